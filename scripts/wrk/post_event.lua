-- wrk script: POST one user.login event per request, each with its own user and partition key.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter = 0

request = function()
  counter = counter + 1
  local user = "usr_" .. counter
  local body = '{"type":"user.login","source":"bench","data":{"user_id":"' .. user ..
    '","ip_address":"192.168.1.1"},"metadata":{"priority":"high","partition_key":"' .. user .. '"}}'
  return wrk.format(nil, "/api/v1/events", nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format("latency_p50_ms=%.2f latency_p99_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("non_2xx=%d errors=%d\n", summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
