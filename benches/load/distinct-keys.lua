-- wrk script for benches/key-explosion.sh: every request a tile the cache has almost surely
-- never seen. Random layer (from the LAYERS environment variable, comma-separated), zoom
-- 0-14, tile, style and style options, so keys pile up far past any memory budget.
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
  local layer = layers[math.random(1, #layers)]
  local z = math.random(0, 14)
  local n = 2 ^ z
  local x, y = math.random(0, n - 1), math.random(0, n - 1)
  local kind = math.random(1, 3)
  local query
  if kind == 1 then
    query = string.format("style=smooth&radius=%d&blur=%d", math.random(5, 60), math.random(0, 30))
  elseif kind == 2 then
    query = string.format("style=dots&dotSize=%d&opacity=%d", math.random(4, 64), math.random(1, 255))
  else
    query = string.format("style=density&radius=%d&scale=%s", math.random(5, 60),
      ({"linear", "sqrt", "log"})[math.random(1, 3)])
  end
  local scale = (math.random(1, 4) == 1) and "@2x" or ""
  return wrk.format("GET", string.format("/tiles/%s/%d/%d/%d%s.png?%s", layer, z, x, y, scale, query))
end
