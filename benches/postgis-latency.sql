-- Synthetic clustered point layer for benches/postgis-latency.sh, generated entirely in SQL.
--
-- Run by the script as
--   psql -X -v ON_ERROR_STOP=1 -v points=N -v seedf=F -v cities=C -v layer=L \
--        -v table_key=twine.points_L -v index=points_L_geom -v comment=... -f benches/postgis-latency.sql
-- It (re)creates twine."points_<layer>" exactly as `twine-heatmap import` does
-- (src/source/postgis/import.rs): the schema (src/source/postgis/sql/schema.sql), the table
-- `seq bigint, weight real, geom geometry(Point, 3857)`, the `twine_data_version` statement
-- trigger, the row in twine.layers, rows written in the same 16-bit Hilbert order of their
-- world position, the GiST index "points_<layer>_geom", then ANALYZE.
--
-- The data: C "cities" (2,000 for the default 10M points), Gaussian clusters centred at
-- uniform positions over latitudes -60..70, with Zipf populations (city i gets a share
-- proportional to 1/i) and sizes growing with population (sigma about 2 km for the smallest to
-- 20 km for the largest, jittered; 30% of each city's points spread 3x wider, like suburbs);
-- plus 10% sparse uniform background over latitudes -60..75. Every weight is 1. `seq` is the
-- generation order, as `import` numbers rows in file order. One backend, no parallel workers:
-- `setseed` then makes every random() call, and so the whole table, reproducible.

\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
SET work_mem = '1GB';
SET maintenance_work_mem = '1GB';
SET statement_timeout = 0;

-- The import's Hilbert key (import.rs hilbert_key): a 2^16 x 2^16 grid over the world square,
-- starting at the north-west corner (0, 0).
CREATE OR REPLACE FUNCTION pg_temp.bench_hilbert16(wx float8, wy float8) RETURNS int8
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  x int8 := CASE WHEN wx = 'NaN'::float8 OR wx <= 0 THEN 0 WHEN wx >= 1 THEN 65535
                 ELSE least(floor(wx * 65536)::int8, 65535) END;
  y int8 := CASE WHEN wy = 'NaN'::float8 OR wy <= 0 THEN 0 WHEN wy >= 1 THEN 65535
                 ELSE least(floor(wy * 65536)::int8, 65535) END;
  s int8 := 32768;
  rx int8;
  ry int8;
  t int8;
  key int8 := 0;
BEGIN
  WHILE s > 0 LOOP
    rx := CASE WHEN x & s <> 0 THEN 1 ELSE 0 END;
    ry := CASE WHEN y & s <> 0 THEN 1 ELSE 0 END;
    key := key + s * s * ((3 * rx) # ry);
    IF ry = 0 THEN
      IF rx = 1 THEN
        x := s - 1 - (x & (s - 1));
        y := s - 1 - (y & (s - 1));
      END IF;
      t := x; x := y; y := t;
    END IF;
    s := s / 2;
  END LOOP;
  RETURN key;
END
$$;

BEGIN;
-- The same advisory lock as `import` (SCHEMA_LOCK_KEY = 0x7477_696e_6568_6d70) around the DDL.
SELECT pg_advisory_xact_lock(8392292353496870256) \gset
\ir ../src/source/postgis/sql/schema.sql
DROP TABLE IF EXISTS twine.:"table";
CREATE TABLE twine.:"table" (
    seq bigint NOT NULL,
    weight real NOT NULL,
    geom geometry(Point, 3857) NOT NULL);
CREATE OR REPLACE TRIGGER twine_data_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON twine.:"table"
    FOR EACH STATEMENT EXECUTE FUNCTION twine.bump_version();
INSERT INTO twine.layers (name, table_name, attribution)
VALUES (:'layer', :'table_key', 'synthetic benchmark data (benches/postgis-latency.sh)')
ON CONFLICT (name) DO UPDATE SET table_name = EXCLUDED.table_name,
    attribution = coalesce(EXCLUDED.attribution, twine.layers.attribution);

SELECT setseed(:seedf) \gset

-- Cities: centre, size, and how many points (exact total: floor of cumulative shares).
CREATE TEMP TABLE bench_cities ON COMMIT DROP AS
WITH c AS (
    SELECT i,
           -180 + 360 * random() AS lon,
           -60 + 130 * random() AS lat,
           (1.0 / i)::numeric AS share,
           0.7 + 0.6 * random() AS jitter
    FROM generate_series(1, :cities) AS i
), cum AS (
    SELECT *, sum(share) OVER (ORDER BY i) / sum(share) OVER () AS upto
    FROM c
)
SELECT i, lon, lat,
       2.0 * power(share * :cities, 0.3) * jitter AS sigma_km,
       (floor(upto * :clustered) - floor(coalesce(lag(upto) OVER (ORDER BY i), 0) * :clustered))::int8 AS n
FROM cum;

INSERT INTO twine.:"table" (seq, weight, geom)
SELECT seq, 1, ST_SetSRID(ST_MakePoint(mx, my), 3857)
FROM (
    SELECT seq, mx, my,
           pg_temp.bench_hilbert16((mx + 20037508.342789244) / 40075016.685578488,
                                   (20037508.342789244 - my) / 40075016.685578488) AS hkey
    FROM (
        -- Degrees to Web Mercator metres (spherical, R = 6378137), longitude wrapped into
        -- [-180, 180), latitude kept inside the Mercator square.
        SELECT seq,
               6378137.0 * radians(lon - 360 * floor((lon + 180) / 360)) AS mx,
               6378137.0 * ln(tan(pi() / 4 + radians(greatest(-85.0, least(85.0, lat))) / 2)) AS my
        FROM (
            SELECT row_number() OVER () - 1 AS seq, lon, lat
            FROM (
                SELECT lon, lat FROM (
                    -- Box-Muller: one Gaussian pair per point (OFFSET 0 keeps each random()
                    -- evaluated once per row).
                    SELECT c.lon + sd * r * sin(theta) / cos(radians(c.lat)) AS lon,
                           c.lat + sd * r * cos(theta) AS lat
                    FROM bench_cities c
                    CROSS JOIN LATERAL (
                        SELECT c.sigma_km / 111.32 * (CASE WHEN random() < 0.3 THEN 3 ELSE 1 END) AS sd,
                               sqrt(-2 * ln(1 - random())) AS r,
                               2 * pi() * random() AS theta
                        FROM generate_series(1, c.n)
                        OFFSET 0
                    ) g
                ) clustered
                UNION ALL
                SELECT -180 + 360 * random(), -60 + 135 * random()
                FROM generate_series(1, :points - :clustered)
            ) raw
        ) numbered
    ) metres
) keyed
ORDER BY hkey, seq;

CREATE INDEX IF NOT EXISTS :"index" ON twine.:"table" USING gist (geom);
COMMENT ON TABLE twine.:"table" IS :'comment';
COMMIT;

ANALYZE twine.:"table";
