-- wrk script: POST /api/v1/events/batch with 100 user.login events per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter = 0
local per_request = 100

request = function()
  local events = {}
  for i = 1, per_request do
    counter = counter + 1
    local user = "usr_" .. counter
    events[i] = '{"type":"user.login","source":"bench","data":{"user_id":"' .. user ..
      '","ip_address":"192.168.1.1"},"metadata":{"partition_key":"' .. user .. '"}}'
  end
  return wrk.format(nil, "/api/v1/events/batch", nil, "[" .. table.concat(events, ",") .. "]")
end

done = function(summary, latency, requests)
  io.write(string.format("events_per_sec=%.0f\n", summary.requests / (summary.duration / 1e6) * per_request))
  io.write(string.format("latency_p50_ms=%.2f latency_p99_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("non_2xx=%d errors=%d\n", summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
