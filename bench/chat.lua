-- wrk script: POST a realistic ~1 KB chat-completion request (bench/request.json).
-- Environment: BENCH_BODY (path of the JSON body, default bench/request.json),
-- BENCH_MODEL (replaces the "model" field; selects the llmux deployment),
-- BENCH_KEY (the bearer key, default sk-bench).
local path = os.getenv("BENCH_BODY") or "bench/request.json"
local f = assert(io.open(path, "rb"))
local body = f:read("*a"):gsub("%s+$", "")
f:close()
local model = os.getenv("BENCH_MODEL")
if model and model ~= "" then
  body = body:gsub('"model":"[^"]*"', '"model":"' .. model .. '"', 1)
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-bench")
