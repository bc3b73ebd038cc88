"""Identifier formats: travel-document numbers, ICAO 9303 MRZ, ISO 3779 VINs."""
