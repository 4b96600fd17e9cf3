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

-- The time column and category columns `import --time/--category` kept in a layer's table
-- (NULL and empty for layers without). Added where missing, as max_weights below.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'twine'
                   AND table_name = 'layers' AND column_name = 'time_column') THEN
        ALTER TABLE twine.layers ADD COLUMN time_column text,
            ADD COLUMN category_columns text[] NOT NULL DEFAULT '{}';
    END IF;
END
$$;

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

-- Bin pyramids of imported layers: for each zoom 0..max_zoom, the layer's points summed into
-- the pixels of that zoom (256 * 2^z per world width), so a dense tile reads its pixels'
-- sums instead of every point. Built by `import` (and `twine-heatmap pyramid`) from the
-- table at `version`; the server uses a pyramid only while the table is still at that version.
CREATE TABLE IF NOT EXISTS twine.pyramids (
    table_name  text PRIMARY KEY,   -- the points table, as in twine.versions
    bins_table  text NOT NULL,      -- in schema twine
    version     bigint NOT NULL,
    max_zoom    int NOT NULL,
    point_count bigint NOT NULL,
    -- bounds of the points in world units (0..1, y down)
    x0 float8 NOT NULL, y0 float8 NOT NULL, x1 float8 NOT NULL, y1 float8 NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT now()
);
-- The heaviest pixel of each zoom 0..max_zoom (the density style's reference, read without
-- a scan); NULL for pyramids built before it existed. Added where missing, by a role that
-- may (a server's role need not own the table).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'twine'
                   AND table_name = 'pyramids' AND column_name = 'max_weights') THEN
        ALTER TABLE twine.pyramids ADD COLUMN max_weights float8[];
    END IF;
END
$$;

-- Builds the pyramid of the points `points_sql` yields (world x, y and weight w, as the
-- server's own point query gives them) into a new table twine.<bins>_new (primary key
-- <bins>_new_pk), zooms max_zoom down to 0, and returns its number of bins. The caller
-- swaps it in for twine.<bins>.
-- One row per zoom and 64x64-pixel block; `weights` holds, per occupied pixel in (row,
-- column) order, its offset in the block (int2: row * 64 + column) and weight sum (float8);
-- `sums` holds, in the same order, its point count (int8) and weighted x and y sums (float8),
-- all big-endian. Blocks keep a dense tile to a few dozen rows. Each zoom is summed from the
-- one below it; the finest from the points, with the same float8 arithmetic as the server.
-- The weight of each zoom's heaviest pixel goes to pg_temp.twine_pyramid_maxima (z, w),
-- for the caller to record in twine.pyramids.
DROP FUNCTION IF EXISTS twine.build_pyramid(regclass, text, int);
CREATE OR REPLACE FUNCTION twine.build_pyramid(points_sql text, bins text, max_zoom int)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    built text := bins || '_new';
    total bigint := 0;
    added bigint;
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS twine.%I', built);
    EXECUTE format(
        'CREATE TABLE twine.%I (z int2 NOT NULL, block_y int4 NOT NULL, block_x int4 NOT NULL, '
        'weights bytea NOT NULL, sums bytea NOT NULL)', built);
    -- Stored uncompressed: reading a block must be a plain copy.
    EXECUTE format('ALTER TABLE twine.%I ALTER weights SET STORAGE EXTERNAL, '
        'ALTER sums SET STORAGE EXTERNAL', built);
    DROP TABLE IF EXISTS pg_temp.twine_level;
    EXECUTE format(
        'CREATE TEMP TABLE twine_level AS '
        'SELECT floor(x * $1)::int8 AS bx, floor(y * $1)::int8 AS by, count(*)::int8 AS n, '
        'sum(w) AS w, sum(w * x) AS wx, sum(w * y) AS wy '
        'FROM (SELECT x, y, w::float8 AS w FROM (%s) q) p GROUP BY 1, 2', points_sql)
        USING 256 * 2 ^ max_zoom;
    DROP TABLE IF EXISTS pg_temp.twine_pyramid_maxima;
    CREATE TEMP TABLE twine_pyramid_maxima (z int4 NOT NULL, w float8 NOT NULL);
    FOR zoom IN REVERSE max_zoom..0 LOOP
        IF zoom < max_zoom THEN
            DROP TABLE IF EXISTS pg_temp.twine_coarser;
            CREATE TEMP TABLE twine_coarser AS
                SELECT bx >> 1 AS bx, by >> 1 AS by, sum(n)::int8 AS n, sum(w) AS w,
                       sum(wx) AS wx, sum(wy) AS wy
                FROM pg_temp.twine_level GROUP BY 1, 2;
            DROP TABLE pg_temp.twine_level;
            ALTER TABLE pg_temp.twine_coarser RENAME TO twine_level;
        END IF;
        EXECUTE format(
            'INSERT INTO twine.%I (z, block_y, block_x, weights, sums) '
            'SELECT $1, by >> 6, bx >> 6, '
            'string_agg(int2send(((by & 63) * 64 + (bx & 63))::int2) || float8send(w), ''''::bytea ORDER BY by, bx), '
            'string_agg(int8send(n) || float8send(wx) || float8send(wy), ''''::bytea ORDER BY by, bx) '
            'FROM pg_temp.twine_level GROUP BY by >> 6, bx >> 6 ORDER BY 2, 3', built)
            USING zoom;
        INSERT INTO pg_temp.twine_pyramid_maxima
            SELECT zoom, coalesce(max(w), 0) FROM pg_temp.twine_level;
        SELECT count(*) INTO added FROM pg_temp.twine_level;
        total := total + added;
    END LOOP;
    DROP TABLE pg_temp.twine_level;
    EXECUTE format('ALTER TABLE twine.%I ADD CONSTRAINT %I PRIMARY KEY (z, block_y, block_x)',
        built, bins || '_new_pk');
    RETURN total;
END
$$;
