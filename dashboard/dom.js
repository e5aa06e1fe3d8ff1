// Building DOM nodes without innerHTML: every text from the API goes in as text, never markup.

/**
 * el("td", {className: "count", dataset: {direction: "in"}, title: "..."}, "3")
 * Properties go on the element (className, textContent, title, hidden, ...); `dataset`,
 * `attrs` (setAttribute) and `on` (event listeners) are spread. Children: nodes or strings.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { dataset, attrs, on, ...rest } = props;
  Object.assign(node, rest);
  for (const [name, value] of Object.entries(dataset || {})) node.dataset[name] = value;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const [name, listener] of Object.entries(on || {})) node.addEventListener(name, listener);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function cell(text, className) {
  return el("td", className ? { className, textContent: text } : { textContent: text });
}

/** Replace a table body's rows; a single italic row says so when there are none. */
export function fillBody(body, rows, emptyText) {
  if (rows.length) {
    body.replaceChildren(...rows);
    return;
  }
  const columns = body.closest("table").querySelectorAll("thead th").length || 1;
  body.replaceChildren(el("tr", { className: "empty" },
                          el("td", { colSpan: columns, textContent: emptyText })));
}

/** Show a message in a status line (role=status elements are read out by screen readers). */
export function say(node, text, kind = "info") {
  node.textContent = text;
  node.dataset.kind = kind;
}
