-- wrk script for scripts/bench/run: posts the same JSON notice on every
-- request and counts responses by status, so the run can compare the
-- acknowledged messages with the rows stored afterwards.
--
-- Environment:
--   BENCH_TOKEN            bearer token to send (bare-axum ignores it)
--   BENCH_PROFILE          profile name in the body (default "bot")
--   BENCH_EXPECTED_STATUS  status that counts as acknowledged (default 202)
--
-- The done callback prints one line that starts with "result " and contains
-- key=value pairs; latencies are in microseconds.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
wrk.body = string.format(
   '{"text":"600519 filled 100 @ 1688.00","title":"order","profile":"%s"}',
   os.getenv("BENCH_PROFILE") or "bot"
)

local expected_status = tonumber(os.getenv("BENCH_EXPECTED_STATUS") or "202")
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   acknowledged = 0
   other_status = 0
end

function response(status, headers, body)
   if status == expected_status then
      acknowledged = acknowledged + 1
   else
      other_status = other_status + 1
   end
end

function done(summary, latency, requests)
   local total_acknowledged = 0
   local total_other = 0
   for _, thread in ipairs(threads) do
      total_acknowledged = total_acknowledged + thread:get("acknowledged")
      total_other = total_other + thread:get("other_status")
   end
   local errors = summary.errors
   io.write(string.format(
      "result requests=%d duration_us=%d acknowledged=%d other_status=%d "
         .. "socket_errors=%d timeouts=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%d\n",
      summary.requests, summary.duration, total_acknowledged, total_other,
      errors.connect + errors.read + errors.write, errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean
   ))
end
