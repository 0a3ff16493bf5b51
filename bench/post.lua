-- wrk script: POST a fixed JSON body and count the requests each thread sends.
--
-- Script arguments (after `--` on the wrk command line):
--   1     path of the file holding the request body
--   2...  extra headers as "Name: value"
-- done() prints "BENCH_SENT <n>": requests written to the wire, including those still in
-- flight when the phase ended (wrk's own "N requests" counts completed responses only).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"), "cannot open body file " .. tostring(args[1]))
  local body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer sk-bench-not-a-key"
  for i = 2, #args do
    local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
    assert(name, "header argument must look like 'Name: value', got " .. args[i])
    wrk.headers[name] = value
  end
  prepared = wrk.format()
  sent = 0
end

function request()
  sent = sent + 1
  return prepared
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("sent")
  end
  io.write(string.format("BENCH_SENT %d\n", total))
end
