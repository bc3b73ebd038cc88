"""The HTTP side: the peer API, the local API, and the middleware they share."""
