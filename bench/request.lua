-- wrk script: method and headers from the environment, optional cookie rotation,
-- per-status counts and one machine-readable summary line (WRKJSON {...}).
--   WRK_METHOD        GET (default) or POST
--   WRK_HEADERS       newline-separated "Name: value" lines
--   WRK_COOKIES_FILE  a file of Cookie header values, one a line; request i sends line
--                     i mod n (several sessions, so no two in-flight requests share one)
wrk.method = os.getenv("WRK_METHOD") or "GET"
for line in (os.getenv("WRK_HEADERS") or ""):gmatch("[^\n]+") do
  local k, v = line:match("^([^:]+):%s*(.*)$")
  if k then wrk.headers[k] = v end
end

local cookies_file = os.getenv("WRK_COOKIES_FILE")
if cookies_file and cookies_file ~= "" then
  local cookies = {}
  for line in io.lines(cookies_file) do
    if line ~= "" then table.insert(cookies, line) end
  end
  local i = 0
  function request()
    i = i + 1
    wrk.headers["Cookie"] = cookies[(i % #cookies) + 1]
    return wrk.format()
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do counts[k] = (counts[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(counts) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"errors":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
