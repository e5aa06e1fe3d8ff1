"""bench/accuracy: counted vs true line crossings on real footage, ours vs public peers."""
