-- wrk script for the benchmark suite. BENCH_KIND picks the request:
--   health | user | include | create | login
-- The first script argument is a file of user ids (one per line).
local kind = os.getenv("BENCH_KIND") or "health"
local token = os.getenv("BENCH_TOKEN") or ""
local password = "bench password 1234"
local ids = {}
local prefix = 0
local counter = 0

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  prefix = math.random(1, 1000000000)
  if args[1] then
    for line in io.lines(args[1]) do ids[#ids + 1] = line end
  end
end

local auth = { ["authorization"] = "Bearer " .. token }
local json = { ["content-type"] = "application/json" }

function request()
  if kind == "user" then
    return wrk.format("GET", "/api/users/" .. ids[math.random(#ids)], auth)
  elseif kind == "include" then
    return wrk.format("GET", "/api/users/" .. ids[math.random(#ids)] .. "?include=posts", auth)
  elseif kind == "create" then
    counter = counter + 1
    local body = string.format(
      '{"name":"Bench","email":"b-%d-%d@bench.test","password":"%s"}', prefix, counter, password)
    return wrk.format("POST", "/api/users", json, body)
  elseif kind == "login" then
    local body = string.format(
      '{"email":"user-%d@bench.test","password":"%s"}', math.random(1, 10000), password)
    return wrk.format("POST", "/api/auth/login", json, body)
  end
  return wrk.format("GET", "/api/health")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"secs":%.3f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.status + e.timeout))
end
