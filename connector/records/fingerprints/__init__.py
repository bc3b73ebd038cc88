"""Fingerprints: ISO/IEC 19794-2 minutiae records read and written, and NIST bozorth3 matching."""
