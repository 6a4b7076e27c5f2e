-- wrk script: POST {"entities": ["<id>"]} with an id drawn at random per request from the file
-- named by $WRK_IDS_FILE (one id per line).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local ids = {}
local path = assert(os.getenv("WRK_IDS_FILE"), "set WRK_IDS_FILE")
for line in assert(io.open(path, "r")):lines() do
  if #line > 0 then ids[#ids + 1] = line end
end
assert(#ids > 0, "no ids in $WRK_IDS_FILE")

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0) % 100000)
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format(nil, nil, nil, '{"entities": ["' .. id .. '"]}')
end
