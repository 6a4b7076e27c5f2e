-- wrk script: POST the JSON body read from the file named by $WRK_BODY_FILE (wrk itself reports
-- answers that are not 2xx/3xx, which the benchmark counts as errors).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local path = assert(os.getenv("WRK_BODY_FILE"), "set WRK_BODY_FILE")
local f = assert(io.open(path, "rb"))
wrk.body = f:read("*a")
f:close()
