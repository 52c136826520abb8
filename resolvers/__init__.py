"""Thin GraphQL glue: decode IDs and inputs, call one service function, map domain errors."""
