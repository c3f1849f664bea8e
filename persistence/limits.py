"""Field lengths, declared once: schema.py's column types, the stores' checks and the REST
models all read them here, so a value the API accepts is one the database stores.

The migrations are history and keep the literals they were written with; a test
(tests/persistence/test_limits.py) proves that a migrated database has these lengths.
Changing one here therefore needs a migration too.
"""

ID_CHARS = 128  # every id, and every column referencing one
SLUG_CHARS = 64  # workspaces.slug
NAME_CHARS = 200  # names (workspaces, agents, codebases, schedules, tokens), models, branches
TITLE_CHARS = 500  # notes, conversations, tasks
LABEL_CHARS = 200  # note_snapshots.label (a version's label)
KIND_CHARS = 64  # agents.role, background_tasks.kind, schedules.job_kind, languages, time zones
STATUS_CHARS = 16  # statuses, snapshot kinds, message and token roles
PATH_CHARS = 2000  # codebases.repo_url and codebases.path
AUTHOR_CHARS = 200  # conversation_messages.author
WORKER_CHARS = 200  # background_tasks.locked_by
CRON_CHARS = 200  # schedules.cron
SECRET_HASH_CHARS = 64  # tokens.secret_hash: a SHA-256 in hex
TEXT_CHARS = 1_000_000  # text columns: descriptions, instructions, message content
ERROR_CHARS = 10_000  # background_tasks.error (longer errors are cut, not refused)
WORKSPACE_DESCRIPTION_CHARS = 100_000  # what the REST API accepts (the store takes TEXT_CHARS)
CURSOR_CHARS = 1000  # a paging cursor coming back
WEBHOOK_SECRET_CHARS = 200  # webhooks.secret: what signs the deliveries
