-- wrk script: POST /v1/payments with a unique Idempotency-Key, end-to-end id and
-- debtor/creditor accounts per request (many customers, as in real traffic), and count
-- every answer that is not 201 Created.
-- Used by bench/load/run.sh; reads the API key from the environment (PAYRULES_KEY).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  n = 0
  not_created = 0
  seed = os.time()
  key = os.getenv("PAYRULES_KEY")
  -- Several wrk processes at once (bench/hosts) each need keys of their own.
  prefix = os.getenv("PAYRULES_LOAD_PREFIX") or ""
  seed = prefix .. (seed % 100000)
end

request = function()
  n = n + 1
  local id = string.format("%s-%d-%d", seed, tid, n)
  local body = string.format([[{"end_to_end_id":"LOAD-%s","amount":"%d.%02d","currency":"USD",
"debtor":{"name":"Harbor Coffee Roasters LLC","country":"US","account":{"id":"D%s"}},
"debtor_agent":{"member_id":"021000021"},
"creditor":{"name":"Maria Gonzalez","country":"US","account":{"id":"C%s"}},
"creditor_agent":{"member_id":"121000248"},
"purpose":"SALA","urgency":"instant"}]], id, 100 + n % 5000, n % 100, id, id)
  local headers = {
    ["Authorization"] = "Bearer " .. key,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "load-" .. id,
  }
  -- A new connection per request (bench/tls: what a handshake costs).
  if os.getenv("PAYRULES_LOAD_CLOSE") then
    headers["Connection"] = "close"
  end
  return wrk.format("POST", "/v1/payments", headers, body)
end

response = function(status, headers, body)
  if status ~= 201 then
    not_created = not_created + 1
  end
end

done = function(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("not_created")
  end
  io.write(string.format("not 201: %d\n", bad))
end
