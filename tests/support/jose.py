"""Our keys as an independent JOSE library (joserfc) holds them, to check what we sign."""

from __future__ import annotations

from joserfc.jwk import OKPKey

from connector.crypto.jws import Signer


def joserfc_key(signer: Signer) -> OKPKey:
    """The node's public key as the independent JOSE library holds it."""
    jwk: dict[str, str | list[str]] = {**signer.public.jwk()}
    return OKPKey.import_key(jwk)
