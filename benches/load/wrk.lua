-- wrk script for benches/load.sh.
--   wrk -tT ... -s wrk.lua http://127.0.0.1:PORT -- REQUESTS_FILE T [PREFIX_FROM PREFIX_TO]
-- Cycles through the request paths in REQUESTS_FILE (one per line). wrk's Lua API has no
-- per-connection hook, so each thread starts at its own offset (thread i of T at i/T of the
-- list) and its connections take the next path in turn; the list is i.i.d. Zipf draws, so
-- every connection still sees the same mix. Optional PREFIX_FROM/PREFIX_TO rewrite the start
-- of each path (e.g. /tiles/demo/ -> /static/). Requests are formatted once, in init().
-- done() prints one RESULT line with requests, req/s, latency percentiles (microseconds) and
-- errors. Failed answers are wrk's own count of statuses above 399 (summary.errors.status):
-- a Lua response() hook would see every status, but it makes wrk copy each response's
-- headers and body into Lua, which cost the client (sharing the cores with the server) so
-- much CPU that it cut the measured throughput by a fifth and doubled p99. The warm-up
-- passes in load.sh check every tile for 200 with curl.

local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  assert(file, "wrk.lua: pass the requests file after --")
  local total = tonumber(args[2] or "1") or 1
  local from, to = args[3], args[4]
  reqs, n = {}, 0
  for line in io.lines(file) do
    if #line > 0 then
      if from and to and line:sub(1, #from) == from then
        line = to .. line:sub(#from + 1)
      end
      n = n + 1
      reqs[n] = wrk.format("GET", line)
    end
  end
  assert(n > 0, "wrk.lua: no paths in " .. file)
  pos = math.floor(n * (tid or 0) / math.max(total, 1)) % n
end

function request()
  pos = pos + 1
  if pos > n then pos = 1 end
  return reqs[pos]
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p95_us=%d p99_us=%d max_us=%d mean_us=%.0f " ..
    "http_errors=%d connect=%d read=%d write=%d timeout=%d bytes=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout, summary.bytes))
end
