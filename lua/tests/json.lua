-- json.lua - a small JSON decoder for the tests (vectors, params_json).
-- null decodes to json.null; arrays and objects to tables marked with
-- json.ARRAY / json.OBJECT metatables so tests can tell [] from {}.
local json = {}
json.null = setmetatable({}, { __tostring = function() return "null" end })
json.ARRAY = { __jsontype = "array" }
json.OBJECT = { __jsontype = "object" }

local function err(s, i, what) error(string.format("json: %s at byte %d near %q", what, i, s:sub(i, i + 10)), 0) end

local function skip(s, i)
  local _, e = s:find("^[ \t\r\n]*", i)
  return e + 1
end

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function utf8char(c)
  if c < 0x80 then return string.char(c)
  elseif c < 0x800 then return string.char(0xC0 + math.floor(c / 64), 0x80 + c % 64)
  elseif c < 0x10000 then return string.char(0xE0 + math.floor(c / 4096), 0x80 + math.floor(c / 64) % 64, 0x80 + c % 64)
  else return string.char(0xF0 + math.floor(c / 262144), 0x80 + math.floor(c / 4096) % 64, 0x80 + math.floor(c / 64) % 64, 0x80 + c % 64) end
end

local value

local function str(s, i)
  local out, j = {}, i + 1
  while true do
    local c = s:sub(j, j)
    if c == "" then err(s, i, "unterminated string") end
    if c == '"' then return table.concat(out), j + 1 end
    if c == "\\" then
      local e = s:sub(j + 1, j + 1)
      if e == "u" then
        local cp = tonumber(s:sub(j + 2, j + 5), 16) or err(s, j, "bad \\u escape")
        j = j + 6
        if cp >= 0xD800 and cp < 0xDC00 and s:sub(j, j + 1) == "\\u" then
          local lo = tonumber(s:sub(j + 2, j + 5), 16)
          cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
          j = j + 6
        end
        out[#out + 1] = utf8char(cp)
      else
        out[#out + 1] = escapes[e] or err(s, j, "bad escape")
        j = j + 2
      end
    else
      local k = s:find('["\\]', j) or #s + 1
      out[#out + 1] = s:sub(j, k - 1)
      j = k
    end
  end
end

function value(s, i)
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local t = setmetatable({}, json.OBJECT)
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return t, i + 1 end
    while true do
      i = skip(s, i)
      if s:sub(i, i) ~= '"' then err(s, i, "expected a key") end
      local k
      k, i = str(s, i)
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then err(s, i, "expected ':'") end
      t[k], i = value(s, i + 1)
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "}" then return t, i + 1 end
      if d ~= "," then err(s, i, "expected ',' or '}'") end
      i = i + 1
    end
  elseif c == "[" then
    local t = setmetatable({}, json.ARRAY)
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return t, i + 1 end
    while true do
      t[#t + 1], i = value(s, i)
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "]" then return t, i + 1 end
      if d ~= "," then err(s, i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then
    return str(s, i)
  elseif s:find("^true", i) then return true, i + 4
  elseif s:find("^false", i) then return false, i + 5
  elseif s:find("^null", i) then return json.null, i + 4
  else
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not num or num == "" then err(s, i, "unexpected character") end
    local n = tonumber(num) or err(s, i, "bad number")
    if math.tointeger and not num:find("[.eE]") then n = math.tointeger(n) or n end
    return n, i + #num
  end
end

function json.decode(s)
  local v, i = value(s, 1)
  i = skip(s, i)
  if i <= #s then err(s, i, "trailing data") end
  return v
end

return json
