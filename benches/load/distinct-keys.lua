-- wrk script for benches/key-explosion.sh: every request a tile the cache has almost surely
-- never seen. Random layer (from the LAYERS environment variable, comma-separated), zoom
-- 0-14, tile, style and style options, so keys pile up far past any memory budget.
-- keys.lua sits beside this script; wrk gives scripts no other way to find it.
local keys = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "keys.lua")

local layers = {}
for name in string.gmatch(os.getenv("LAYERS") or "demo", "[^,]+") do
  layers[#layers + 1] = name
end

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  local path, query = keys.random_tile(layers[math.random(1, #layers)])
  return wrk.format("GET", path .. "?" .. query)
end
