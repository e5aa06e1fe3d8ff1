// The live channel: one WebSocket to the broadcaster for count updates and alert changes,
// reconnected with jittered back-off and resumed from the last event seen.

import { ApiError, sendJSON } from "./api.js";
import { SeenEvents } from "./sequence.js";

// A fresh one-use ticket for every (re)connect: the key itself never goes into a URL.
async function endpoint() {
  const ticket = await sendJSON("POST", "/api/ws-ticket");
  const url = new URL(ticket.websocket_url, location.href);
  url.searchParams.set("ticket", ticket.ticket);
  return url.href;
}

/**
 * handlers: counts(update), alert(event), state(name, text), resumed() when events may have
 * been missed (a reconnect without a replay): the caller reloads over the REST API.
 */
export function startLive(handlers) {
  const seen = new SeenEvents();
  let attempt = 0;
  let everOpen = false;

  function retry() {
    const delayMs = Math.min(10000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
    attempt++;
    setTimeout(open, delayMs);
  }

  // link: {ws, resuming}, one per connection.
  function dispatch(link, message) {
    if (message.type === "subscribed") {
      link.resuming = false;
      handlers.state("live", "live");
      return;
    }
    if (message.type === "error") {
      console.warn("broadcaster:", message.message);
      // Too far behind to replay (or the subscription was refused): start afresh, and
      // reload over the REST API what the replay would have brought.
      if (link.resuming) {
        link.resuming = false;
        link.ws.send(JSON.stringify({ op: "subscribe", cameras: "*" }));
        handlers.resumed();
      }
      return;
    }
    if (typeof message.event_seq !== "number" || !seen.first(message.event_seq)) return;
    if (message.type === "counts") handlers.counts(message);
    else if (message.type === "alert") handlers.alert(message);
  }

  async function open() {
    let url;
    try {
      url = await endpoint();
    } catch (error) {
      handlers.state("down", "offline: " + error.message);
      // A refused key is not retried: the key prompt takes over.
      if (!(error instanceof ApiError && error.status === 401)) retry();
      return;
    }
    const ws = new WebSocket(url);
    const link = { ws, resuming: false };
    // "live" only once the broadcaster confirms the subscription (after any replay): from
    // then on every committed event reaches this page.
    ws.onopen = () => {
      const subscribe = { op: "subscribe", cameras: "*" };
      link.resuming = seen.highest !== null;
      if (link.resuming) subscribe.resume_from = seen.highest;
      ws.send(JSON.stringify(subscribe));
      handlers.state("connecting", "subscribing…");
      attempt = 0;
      if (everOpen && !link.resuming) handlers.resumed();
      everOpen = true;
    };
    ws.onmessage = (event) => {
      try {
        dispatch(link, JSON.parse(event.data));
      } catch (error) {
        console.error("live update failed", error);
      }
    };
    ws.onclose = () => {
      handlers.state("down", "reconnecting…");
      retry();
    };
  }

  open();
}
