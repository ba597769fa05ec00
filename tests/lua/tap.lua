-- tap.lua -- a small TAP producer for the Lua tests, read by prove.
--   local t = require 'tap'
--   t.ok(cond, 'what'); t.close(got, want, rtol, 'what');
--   t.errors(fn, 'pattern', 'what'); t.done()
local M = {}
local count, failed = 0, 0

function M.ok(cond, name)
  count = count + 1
  io.write(cond and 'ok ' or 'not ok ', count, ' - ', (tostring(name):gsub('\n', ' ')), '\n')
  if not cond then failed = failed + 1 end
  io.flush()
  return cond
end

function M.skip(reason)
  count = count + 1
  io.write('ok ', count, ' # skip ', reason, '\n')
end

function M.diag(msg)
  io.write('# ', (tostring(msg):gsub('\n', '\n# ')), '\n')
end

function M.close(got, want, rtol, name, atol)
  local good = type(got) == 'number' and math.abs(got - want) <= (atol or 0) + rtol * math.abs(want)
  if not M.ok(good, name) then M.diag('got ' .. tostring(got) .. ', want ' .. tostring(want)) end
  return good
end

function M.eq(got, want, name)
  local good = got == want
  if not M.ok(good, name) then M.diag('got ' .. tostring(got) .. ', want ' .. tostring(want)) end
  return good
end

-- fn must raise an error whose message contains `pattern` (plain text).
function M.errors(fn, pattern, name)
  local good, err = pcall(fn)
  local matched = not good and tostring(err):find(pattern, 1, true) ~= nil
  M.ok(matched, name .. (not good and (': ' .. tostring(err)) or ' (no error raised)'))
  return matched
end

function M.done()
  io.write('1..', count, '\n')
  -- close the state, so every tensor's __gc runs (LeakSanitizer sees the rest)
  os.exit(failed == 0 and 0 or 1, true)
end

return M
