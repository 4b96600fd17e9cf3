-- twine-heatmap's own objects, created if missing (idempotent; run by `import` and `serve`).
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS twine;

-- Layers created by `twine-heatmap import`; `serve --database-url` serves each of them.
CREATE TABLE IF NOT EXISTS twine.layers (
    name        text PRIMARY KEY,
    table_name  text NOT NULL,
    attribution text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Data version of every point table the server reads (imported or declared in config).
-- A statement-level trigger bumps it on any write, so tile caches can key on it.
CREATE TABLE IF NOT EXISTS twine.versions (
    table_name text PRIMARY KEY,
    version    bigint NOT NULL
);

CREATE OR REPLACE FUNCTION twine.bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO twine.versions (table_name, version)
    VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 1)
    ON CONFLICT (table_name) DO UPDATE SET version = twine.versions.version + 1;
    PERFORM pg_notify('twine_data', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    RETURN NULL;
END
$$;
