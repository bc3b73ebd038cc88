"""Keys and signatures: Ed25519, JWK, compact JWS, key and certificate files."""
