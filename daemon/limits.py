"""Batch API limits and allowed values (see the fact sheet, openai-batch-api.md §0 and §2.1)."""

ENDPOINTS: frozenset[str] = frozenset(
    {
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    }
)
EMBEDDINGS_ENDPOINT = "/v1/embeddings"

MAX_REQUESTS_PER_BATCH = 50_000
MAX_BYTES_PER_BATCH = 200 * 1000 * 1000
MAX_EMBEDDING_INPUTS_PER_BATCH = 50_000
# The longest request line read by default (its line ending not counted). The largest request the
# service takes is one with images inline: 50 MB of payload per request (the vision guide's input
# limit), base64 included; 64 MiB leaves room for the line's envelope and the MB/MiB ambiguity.
DEFAULT_MAX_LINE_BYTES = 64 << 20

METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512

COMPLETION_WINDOWS: frozenset[str] = frozenset({"24h"})

# output_expires_after / expires_after bounds, in seconds (1 hour to 30 days).
EXPIRY_MIN_SECONDS = 3600
EXPIRY_MAX_SECONDS = 30 * 86400
