"""One loader per source format; each recognises its own files (`looks_like`) and loads them (`load`)."""
