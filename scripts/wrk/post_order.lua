-- wrk script: POST one bench.order event per request, its data ten fields (the schema of
-- scripts/bench-ingest-ab.sh); BATCH=100 in the environment posts 100 per request to the batch
-- endpoint instead.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter = 0
local per_request = tonumber(os.getenv("BATCH") or "1")

local function order()
  counter = counter + 1
  return string.format('{"type":"bench.order","source":"bench","data":{"order_id":"ord_%d",' ..
    '"customer_id":"cus_%d","status":"paid","currency":"EUR","total":%d.5,"items":%d,' ..
    '"coupon":null,"express":%s,"country":"DE","created_at":"2026-12-03T10:00:00Z"}}',
    counter, counter % 977, counter % 500, counter % 7 + 1, counter % 2 == 0 and "true" or "false")
end

request = function()
  if per_request == 1 then
    return wrk.format(nil, "/api/v1/events", nil, order())
  end
  local events = {}
  for i = 1, per_request do events[i] = order() end
  return wrk.format(nil, "/api/v1/events/batch", nil, "[" .. table.concat(events, ",") .. "]")
end

done = function(summary, latency, requests)
  io.write(string.format("events_per_sec=%.0f\n", summary.requests / (summary.duration / 1e6) * per_request))
  io.write(string.format("latency_p50_ms=%.2f latency_p99_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("non_2xx=%d errors=%d\n", summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
