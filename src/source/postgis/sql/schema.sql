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

-- Time pyramids of layers with a time column: for each zoom 0..max_zoom and 64x64-pixel
-- block, the pixels' points through time in UTC days, cut into chunks of `chunk_days` days
-- (per zoom), so that any window of whole days reads at most two rows per block:
--   `base`  per pixel with points before the chunk: its offset (int2), count (int4) and
--           weight (float8) of all its points before the chunk's first day;
--   `days`  per pixel and day of the chunk holding points: offset (int2), day within the
--           chunk (int2), count (int4), weight (float8);
-- big-endian, in (row, column[, day]) order. A pixel's running count up to any day of a
-- chunk is its base plus its days before that day, and a window is the difference of two
-- running counts. Chunks are as short as a budget allows: all zoom z's base entries take at
-- most `budget` times its day entries. Part 0 holds every point with a time; part k > 0
-- only those whose category column part_columns[k] is part_values[k] (the first two
-- category columns with at most 16 values). Built by `import` and `twine-heatmap pyramid`
-- next to the bin pyramid; the server uses it only while the table is at the recorded
-- version.
CREATE TABLE IF NOT EXISTS twine.time_pyramids (
    table_name   text PRIMARY KEY,  -- the points table, as in twine.versions
    bins_table   text NOT NULL,     -- in schema twine
    version      bigint NOT NULL,
    max_zoom     int NOT NULL,
    first_day    int NOT NULL,      -- days since 1970-01-01 (UTC) of the earliest point
    days         int NOT NULL,      -- first_day + days is the day after the last point's
    chunk_days   int[] NOT NULL,    -- per zoom 0..max_zoom, from index 1
    part_columns text[] NOT NULL,   -- parts 1..: their category column and value
    part_values  text[] NOT NULL,
    all_timed    bool NOT NULL,     -- whether every point has a time
    built_at     timestamptz NOT NULL DEFAULT now()
);

-- The layout of a time pyramid's rows (see time_pyramid.rs): 1, the first, which servers
-- ignore until `twine-heatmap pyramid` rebuilds it; 2, with levels from `coarsest` (below 0:
-- cells of 2^-level zoom 0 pixels) and entries without weights where every weight is 1
-- (`weighted` false). Added where missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'twine'
                   AND table_name = 'time_pyramids' AND column_name = 'layout') THEN
        ALTER TABLE twine.time_pyramids ADD COLUMN layout int NOT NULL DEFAULT 1,
            ADD COLUMN weighted bool NOT NULL DEFAULT true;
    END IF;
END
$$;

-- Builds the time pyramid of the points `points_sql` yields (world x, y, weight w, time t in
-- seconds since 1970 (NULL without one: no window holds the point) and category columns c0,
-- c1, ...) into a new table twine.<bins>_new, for levels coarsest..max_zoom (a level's cells
-- are 256 * 2^level to the world's side): part 0 from every point with a time, part k from
-- those whose column c<part_columns[k]> is part_values[k]. Entries hold weights only when
-- some point's weight is not 1 (`weighted`). The caller adds the primary key and swaps the
-- table in. Returns (first_day, days, chunk_days (per level from coarsest), weighted,
-- entries); first_day NULL when no point has a time.
-- Within the caller's transaction every table made here keeps its files until commit, even
-- once dropped: so one temporary table only (the finest zoom's pixel-days), and each zoom's
-- rows in one statement, whose sorts' files go when it ends.
DROP FUNCTION IF EXISTS twine.build_time_pyramid(text, text, int, float8, int[], text[]);
CREATE OR REPLACE FUNCTION twine.build_time_pyramid(points_sql text, bins text, coarsest int,
    max_zoom int, budget float8, part_columns int[], part_values text[], OUT first_day int,
    OUT days int, OUT chunk_days int[], OUT weighted bool, OUT entries bigint)
LANGUAGE plpgsql AS $$
DECLARE
    built text := bins || '_new';
    parts text := 'ARRAY[0';
    pixels bigint;
    day_entries bigint;
    chunk int;
BEGIN
    FOR k IN 1..coalesce(array_length(part_values, 1), 0) LOOP
        parts := parts || format(', CASE WHEN %I = %L THEN %s END', 'c' || part_columns[k],
            part_values[k], k);
    END LOOP;
    parts := 'array_remove(' || parts || '], NULL)';
    EXECUTE format('DROP TABLE IF EXISTS twine.%I', built);
    EXECUTE format(
        'CREATE TABLE twine.%I (z int2 NOT NULL, part int2 NOT NULL, block_y int4 NOT NULL, '
        'block_x int4 NOT NULL, chunk int4 NOT NULL, base bytea NOT NULL, days bytea NOT NULL)',
        built);
    -- Stored uncompressed: reading a block must be a plain copy.
    EXECUTE format('ALTER TABLE twine.%I ALTER base SET STORAGE EXTERNAL, '
        'ALTER days SET STORAGE EXTERNAL', built);
    DROP TABLE IF EXISTS pg_temp.twine_tlevel;
    EXECUTE format(
        'CREATE TEMP TABLE twine_tlevel AS '
        'SELECT floor(x * $1)::int8 AS bx, floor(y * $1)::int8 AS by, p.part::int2 AS part, '
        'floor(t / 86400)::int4 AS d, count(*)::int8 AS n, sum(w) AS w '
        'FROM (SELECT x, y, w::float8 AS w, t, %s AS parts FROM (%s) q WHERE t IS NOT NULL) s, '
        'unnest(s.parts) AS p(part) GROUP BY 1, 2, 3, 4',
        parts, points_sql) USING 256 * 2 ^ max_zoom;
    -- Weights sum exactly to counts where every weight is 1: then entries leave them out.
    SELECT min(d), max(d) - min(d) + 1, NOT coalesce(bool_and(w = n), false)
        INTO first_day, days, weighted FROM pg_temp.twine_tlevel;
    entries := 0;
    chunk_days := array_fill(1, ARRAY[max_zoom - coarsest + 1]);
    IF first_day IS NULL THEN
        DROP TABLE pg_temp.twine_tlevel;
        RETURN;
    END IF;
    FOR zoom IN coarsest..max_zoom LOOP
        SELECT count(*), count(DISTINCT (bx, by)) INTO day_entries, pixels FROM (
            SELECT bx >> (max_zoom - zoom) AS bx, by >> (max_zoom - zoom) AS by, d
            FROM pg_temp.twine_tlevel WHERE part = 0 GROUP BY 1, 2, 3) l;
        -- base entries = chunks * pixels at most, within budget * day_entries.
        chunk := least(days, 32767,
            greatest(1, ceil(days::float8 * pixels / (budget * greatest(day_entries, 1)))::int));
        chunk_days[zoom - coarsest + 1] := chunk;
        -- Each pixel's running sums through each chunk it has points in hold as the base of
        -- every later chunk up to (and including) the next one it has points in.
        EXECUTE format(
            'WITH level AS ('
            '  SELECT bx >> $2 AS bx, by >> $2 AS by, part, (d - $3) / $4 AS c, (d - $3) %% $4 AS day, '
            '         sum(n)::int8 AS n, sum(w) AS w '
            '  FROM pg_temp.twine_tlevel GROUP BY 1, 2, 3, 4, 5), '
            'runs AS ('
            '  SELECT bx, by, part, c, sum(n) OVER run AS n, sum(w) OVER run AS w, '
            '         lead(c, 1, $5) OVER run AS next '
            '  FROM (SELECT bx, by, part, c, sum(n) AS n, sum(w) AS w FROM level GROUP BY 1, 2, 3, 4) per_chunk '
            '  WINDOW run AS (PARTITION BY bx, by, part ORDER BY c)), '
            'base AS ('
            '  SELECT part, by >> 6 AS block_y, bx >> 6 AS block_x, g AS c, '
            '         string_agg(int2send(((by & 63) * 64 + (bx & 63))::int2) || int4send(n::int4) '
            '         || CASE WHEN $6 THEN float8send(w) ELSE ''''::bytea END, ''''::bytea ORDER BY by, bx) AS base '
            '  FROM runs, generate_series(runs.c + 1, least(runs.next, $5 - 1)) g GROUP BY 1, 2, 3, 4), '
            'days AS ('
            '  SELECT part, by >> 6 AS block_y, bx >> 6 AS block_x, c, '
            '         string_agg(int2send(((by & 63) * 64 + (bx & 63))::int2) || int2send(day::int2) '
            '         || int4send(n::int4) || CASE WHEN $6 THEN float8send(w) ELSE ''''::bytea END, '
            '         ''''::bytea ORDER BY by, bx, day) AS days '
            '  FROM level GROUP BY 1, 2, 3, 4) '
            'INSERT INTO twine.%I (z, part, block_y, block_x, chunk, base, days) '
            'SELECT $1, part, block_y, block_x, c, coalesce(b.base, ''''::bytea), '
            '       coalesce(k.days, ''''::bytea) '
            'FROM base b FULL JOIN days k USING (part, block_y, block_x, c)', built)
            USING zoom, max_zoom - zoom, first_day, chunk, (days + chunk - 1) / chunk, weighted;
    END LOOP;
    DROP TABLE pg_temp.twine_tlevel;
    EXECUTE format('SELECT coalesce(sum(octet_length(base) / $1 + octet_length(days) / $2), 0)::int8 '
        'FROM twine.%I', built) INTO entries
        USING CASE WHEN weighted THEN 14 ELSE 6 END, CASE WHEN weighted THEN 16 ELSE 8 END;
END
$$;

-- The md5 of the schema.sql that made these objects (one row): `import`, `pyramid` and
-- `db init` run this file only when it differs (postgis/mod.rs, ensure_schema).
CREATE TABLE IF NOT EXISTS twine.schema_state (
    digest text NOT NULL
);
