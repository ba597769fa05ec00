-- crlab.json: a small JSON encoder and decoder for metrics lines and
-- safetensors headers. Objects with keys 1..n encode as arrays; key order
-- in objects is sorted so files are reproducible.
local M = {}

local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
                 ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format('\\u%04x', c:byte())
  end) .. '"'
end

local function encode(v, out)
  local tv = type(v)
  if tv == 'nil' then out[#out + 1] = 'null'
  elseif tv == 'boolean' then out[#out + 1] = tostring(v)
  elseif tv == 'number' then
    if v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = 'null'
    elseif v % 1 == 0 and math.abs(v) < 2 ^ 53 then out[#out + 1] = string.format('%d', v)
    else out[#out + 1] = string.format('%.10g', v) end
  elseif tv == 'string' then out[#out + 1] = encode_string(v)
  elseif tv == 'table' then
    if #v > 0 or next(v) == nil then
      out[#out + 1] = '['
      for i = 1, #v do
        if i > 1 then out[#out + 1] = ',' end
        encode(v[i], out)
      end
      out[#out + 1] = ']'
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = '{'
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = ',' end
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ':'
        local val = v[k]
        if val == nil then val = v[tonumber(k)] end
        encode(val, out)
      end
      out[#out + 1] = '}'
    end
  else
    error('json: cannot encode a ' .. tv, 3)
  end
end

function M.encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

-- Decoder: returns the value, or raises 'json: ... at byte N'.
function M.decode(s)
  local pos = 1
  local function fail(msg) error(string.format('json: %s at byte %d', msg, pos), 0) end
  local function ws() pos = s:find('[^ \t\r\n]', pos) or #s + 1 end
  local value, depth = nil, 0
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == '' then fail('unterminated string') end
      if c == '"' then break end
      if c == '\\' then
        local e = s:sub(i + 1, i + 1)
        local map = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t'}
        if map[e] then
          out[#out + 1] = map[e]
          i = i + 2
        elseif e == 'u' then
          local hex = s:sub(i + 2, i + 5)
          local code = hex:match('^%x%x%x%x$') and tonumber(hex, 16)
          if not code then fail('bad \\u escape') end
          if code < 128 then out[#out + 1] = string.char(code)
          elseif code < 2048 then out[#out + 1] = string.char(192 + math.floor(code / 64), 128 + code % 64)
          else out[#out + 1] = string.char(224 + math.floor(code / 4096), 128 + math.floor(code / 64) % 64, 128 + code % 64) end
          i = i + 6
        else
          fail('bad escape')
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
    pos = i + 1
    return table.concat(out)
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == '{' or c == '[' then
      depth = depth + 1 -- the decoder recurses: a bound, not Lua's stack overflow
      if depth > 1000 then fail('arrays and objects nested deeper than 1000') end
    end
    if c == '{' then
      pos = pos + 1
      local obj = {}
      ws()
      if s:sub(pos, pos) == '}' then pos = pos + 1 depth = depth - 1 return obj end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail('expected a key') end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ':' then fail("expected ':'") end
        pos = pos + 1
        obj[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == '}' then depth = depth - 1 return obj end
        if d ~= ',' then fail("expected ',' or '}'") end
      end
    elseif c == '[' then
      pos = pos + 1
      local arr = {}
      ws()
      if s:sub(pos, pos) == ']' then pos = pos + 1 depth = depth - 1 return arr end
      while true do
        arr[#arr + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == ']' then depth = depth - 1 return arr end
        if d ~= ',' then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif s:sub(pos, pos + 3) == 'true' then pos = pos + 4 return true
    elseif s:sub(pos, pos + 4) == 'false' then pos = pos + 5 return false
    elseif s:sub(pos, pos + 3) == 'null' then pos = pos + 4 return nil
    else
      local num = s:match('^-?%d+%.?%d*[eE]?[-+]?%d*', pos)
      if not num or num == '' then fail('unexpected character ' .. string.format('%q', c)) end
      pos = pos + #num
      return tonumber(num)
    end
  end
  local v = value()
  ws()
  if pos <= #s then fail('trailing characters') end
  return v
end

return M
