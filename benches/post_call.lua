-- wrk script: POST /v1/calls/outbound with a different valid number per request.
local counter = 0
local key = os.getenv("VOXBRIDGE_KEY") or "vbk_bench_0123456789abcdef"

request = function()
    counter = counter + 1
    local body = string.format('{"to": "+1202555%04d", "context": {"batch": "load", "n": %d}}', counter % 10000, counter)
    return wrk.format("POST", "/v1/calls/outbound", {
        ["Authorization"] = "Bearer " .. key,
        ["Content-Type"] = "application/json",
    }, body)
end

local statuses = {}
response = function(status)
    statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
    io.write(string.format("p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f rps=%.0f non2xx=%d\n",
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
        summary.requests / (summary.duration / 1e6), summary.errors.status))
end
