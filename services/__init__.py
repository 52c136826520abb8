"""The domain: plain Python and AsyncSession. No GraphQL, no HTTP, no pub/sub here."""
