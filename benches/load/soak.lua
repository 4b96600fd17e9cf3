-- wrk script for benches/soak.sh: a mix of the server's work, with every answer classified.
--   LAYERS=demo,a,b FILTER_LAYER=b FILTER_PARAM=minpop wrk ... -s soak.lua URL
-- Each request is drawn at random:
--   50 %  warm tile: one of a fixed set (8 cities x zooms 0-9 x each layer, one of three
--         styles each), so after the first pass they are cache hits;
--   20 %  cold tile: a random tile (zoom 0-14) with random style options, a key the cache
--         has almost surely never seen; on FILTER_LAYER a quarter of them also carry a filter
--         value (FILTER_PARAM, one of a few), so filtered statistics are read too;
--   15 %  points: /points/{layer}/{z}/{x}/{y}.json or /points/{layer}?bbox=... (limit 5000);
--   15 %  overlays: /heatmap.png (up to 512 x 512, any style) and the proof of concept's
--         /twine.heatmap?png=true (its JSON) and ?png=false (its points).
-- response() classifies every answer:
--   ok        200 or 304;
--   db503     503 with Retry-After whose JSON error is "the database is unavailable" (the
--             documented answer while the database cannot be reached);
--   busy503   503 with Retry-After whose JSON error is "the server is busy" (the documented
--             answer when the overlay or points budget stays full for its wait);
--   error     anything else: a 500, a 504, a 4xx, a 503 of another kind or without
--             Retry-After. The first few are printed with their body.
-- X-Cache values of the answers are counted too (hit-memory, hit-disk, miss, ...).
-- done() prints one "SOAK key=value ..." line (totals over all threads) for soak.sh.

-- keys.lua sits beside this script; wrk gives scripts no other way to find it.
local keys = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "keys.lua")

local layers = {}
for name in string.gmatch(os.getenv("LAYERS") or "demo", "[^,]+") do
  layers[#layers + 1] = name
end
local filter_layer = os.getenv("FILTER_LAYER") or ""
local filter_param = os.getenv("FILTER_PARAM") or ""
local filter_values = { 1000, 5000, 20000, 100000, 500000 }

-- Cities the warm tiles and the points boxes are centred on (lon, lat).
local places = {
  { 2.35, 48.86 }, { -74.0, 40.71 }, { 139.69, 35.69 }, { -46.63, -23.55 },
  { 3.38, 6.52 }, { 77.21, 28.61 }, { 151.21, -33.87 }, { -99.13, 19.43 },
}
local warm_styles = { "", "?style=dots&scheme=fire", "?style=density&scale=sqrt" }

local function tile_of(lon, lat, z)
  local n = 2 ^ z
  local x = math.floor((lon + 180) / 360 * n)
  local r = math.rad(lat)
  local y = math.floor((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n)
  return x, y
end

local warm = {}
do
  local i = 0
  for _, layer in ipairs(layers) do
    for _, p in ipairs(places) do
      for z = 0, 9 do
        local x, y = tile_of(p[1], p[2], z)
        local path = string.format("/tiles/%s/%d/%d/%d.png%s", layer, z, x, y,
          warm_styles[i % #warm_styles + 1])
        warm[#warm + 1] = path
        i = i + 1
      end
    end
  end
end

local threads = {}

function setup(thread)
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
  counts = { ok = 0, db503 = 0, busy503 = 0, error = 0 }
  statuses = {}
  caches = {}
  samples = {}
end

local function pick(list)
  return list[math.random(1, #list)]
end

local function cold_tile()
  local layer = pick(layers)
  local path, query = keys.random_tile(layer)
  if layer == filter_layer and filter_param ~= "" and math.random(1, 4) == 1 then
    query = query .. string.format("&%s=%d", filter_param, pick(filter_values))
  end
  return path .. "?" .. query
end

-- A box of about `span` degrees around a city, jittered, as w,s,e,n.
local function box(span)
  local p = pick(places)
  local lon = p[1] + (math.random() - 0.5) * span
  local lat = p[2] + (math.random() - 0.5) * span / 2
  local half = span / 2
  return math.max(lon - half, -180), math.max(lat - half / 2, -85),
    math.min(lon + half, 180), math.min(lat + half / 2, 85)
end

local function points()
  local layer = pick(layers)
  if math.random(1, 2) == 1 then
    local p = pick(places)
    local z = math.random(6, 12)
    local x, y = tile_of(p[1] + (math.random() - 0.5) * 0.5, p[2] + (math.random() - 0.5) * 0.5, z)
    return string.format("/points/%s/%d/%d/%d.json?limit=5000", layer, z, x, y)
  end
  local w, s, e, n = box(math.random() * 20 + 0.5)
  return string.format("/points/%s?bbox=%.4f,%.4f,%.4f,%.4f&limit=5000", layer, w, s, e, n)
end

local function overlay()
  local layer = pick(layers)
  local w, s, e, n = box(math.random() * 60 + 2)
  local width, height = math.random(64, 512), math.random(64, 512)
  local kind = math.random(1, 4)
  if kind <= 2 then
    local style = pick({ "smooth", "dots", "density" })
    return string.format("/heatmap.png?layer=%s&bbox=%.4f,%.4f,%.4f,%.4f&width=%d&height=%d&style=%s",
      layer, w, s, e, n, width, height, style)
  end
  -- The proof of concept's bounds are lat,lng,lat,lng.
  local png = (kind == 3) and "true" or "false"
  return string.format("/twine.heatmap?png=%s&layer=%s&bounds=%.4f,%.4f,%.4f,%.4f&imgSize=%d,%d&dotSize=%d",
    png, layer, s, w, n, e, width, height, math.random(5, 60))
end

function request()
  local r = math.random()
  local path
  if r < 0.50 then
    path = pick(warm)
  elseif r < 0.70 then
    path = cold_tile()
  elseif r < 0.85 then
    path = points()
  else
    path = overlay()
  end
  return wrk.format("GET", path)
end

local function header(headers, name)
  return headers[name] or headers[string.lower(name)]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local cache = header(headers, "X-Cache")
  if cache then
    caches[cache] = (caches[cache] or 0) + 1
  end
  local class
  if status == 200 or status == 304 then
    class = "ok"
  elseif status == 503 and header(headers, "Retry-After") then
    if string.find(body or "", '"error":"the database is unavailable"', 1, true) then
      class = "db503"
    elseif string.find(body or "", '"error":"the server is busy"', 1, true) then
      class = "busy503"
    end
  end
  if not class then
    class = "error"
    if #samples < 5 then
      samples[#samples + 1] = string.format("%d %s", status, string.sub(body or "", 1, 300))
    end
  end
  counts[class] = counts[class] + 1
end

-- "a=1,b=2" from a table of counts, keys sorted.
local function joined(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%s=%d", tostring(k), t[k]) end
  return table.concat(parts, ",")
end

local function add(into, from)
  for k, v in pairs(from or {}) do into[k] = (into[k] or 0) + v end
end

function done(summary, latency, requests)
  local counts_all, statuses_all, caches_all = {}, {}, {}
  for _, thread in ipairs(threads) do
    add(counts_all, thread:get("counts"))
    add(statuses_all, thread:get("statuses"))
    add(caches_all, thread:get("caches"))
    for _, sample in ipairs(thread:get("samples") or {}) do
      io.write("SAMPLE " .. string.gsub(sample, "\n", " ") .. "\n")
    end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "SOAK requests=%d seconds=%.1f rps=%.1f ok=%d db503=%d busy503=%d errors=%d " ..
    "connect=%d read=%d write=%d timeout=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f statuses=%s x_cache=%s\n",
    summary.requests, secs, summary.requests / secs,
    counts_all.ok or 0, counts_all.db503 or 0, counts_all.busy503 or 0, counts_all.error or 0,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    joined(statuses_all), joined(caches_all)))
end
