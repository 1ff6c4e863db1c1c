-- wrk against the portal: each request takes the next visit's cookies (as many browsers
-- behind one proxy would), GET /message or, with MODE=code, POST /code with a wrong code.
-- Stops after TRIES requests per visit in code mode (4: no recipient is locked out).
-- Usage: COOKIES=file MODE=page|code wrk -s benches/portal_wrk.lua ...
local visits, n = {}, 0
for line in io.lines(os.getenv("COOKIES")) do
  local cookie, csrf = line:match("^(.-)\t(.*)$")
  if cookie then visits[#visits + 1] = { cookie = cookie, csrf = csrf } end
end
local mode = os.getenv("MODE") or "page"
local limit = #visits * 4
local counter = 0

function setup(thread)
  n = n + 1
  thread:set("first", n)
end

function init(args)
  counter = first
end

function request()
  counter = counter + 2
  local v = visits[(counter % #visits) + 1]
  if mode == "code" then
    return wrk.format("POST", "/code", {
      ["Cookie"] = v.cookie,
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, "csrf=" .. v.csrf .. "&code=00000000")
  end
  return wrk.format("GET", "/message", { ["Cookie"] = v.cookie })
end

function response(status, headers, body)
  if mode == "code" and counter > limit then wrk.thread:stop() end
end
