-- Shared by the wrk scripts (loaded with dofile): random tiles the cache has almost surely
-- never seen.

local keys = {}

-- A random tile of `layer` (zoom 0-14, 1 in 4 @2x) with a random style and options, as the
-- path and the query apart: "/tiles/L/z/x/y[@2x].png", "style=...".
function keys.random_tile(layer)
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
      ({ "linear", "sqrt", "log" })[math.random(1, 3)])
  end
  local scale = (math.random(1, 4) == 1) and "@2x" or ""
  return string.format("/tiles/%s/%d/%d/%d%s.png", layer, z, x, y, scale), query
end

return keys
