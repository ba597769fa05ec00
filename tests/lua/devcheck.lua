-- devcheck.lua -- the harness of the GPU tests: the same computation on
-- the CPU and on the device, compared with a tolerance that scales with
-- the magnitude of the CPU's result.
--
--   local D = require 'devcheck'
--   D.run(t, {
--     {'add', function() local a = crlab.randn(3, 4)
--        D.close(t, D.to(a) + D.to(a), a + a, 'a + a') end},
--   })
--
-- Without a GPU each case prints one TAP skip line. CRLAB_TEST_DEVICE=cpu
-- runs the cases with the CPU standing in for the device (make test does,
-- so the GPU tests' own code is known to run before a GPU ever sees it);
-- that compares the CPU with itself and says nothing about CUDA.
local crlab = require 'crlab'

local M = {}
M.device = os.getenv('CRLAB_TEST_DEVICE') or 'cuda'
assert(M.device == 'cuda' or M.device == 'cpu', 'CRLAB_TEST_DEVICE must be cuda or cpu')
M.stand_in = M.device == 'cpu'

function M.available()
  if M.stand_in then return true end
  return crlab.cuda.available()
end

-- A copy of x on the device (tensors, or tables of them).
function M.to(x)
  if type(x) == 'table' then
    local r = {}
    for k, v in pairs(x) do r[k] = M.to(v) end
    return r
  end
  if M.stand_in then return x:clone() end
  return x:cuda()
end

-- A host copy of a device tensor.
function M.host(x)
  if M.stand_in then return x:clone() end
  return x:cpu()
end

-- A module (or criterion) made twice from the same seed: one stays on the
-- CPU, the other moves to the device.
function M.pair(seed, make)
  crlab.manualSeed(seed)
  local a = make()
  crlab.manualSeed(seed)
  local b = make()
  if not M.stand_in then b:cuda() end
  return a, b
end

-- max |got - want| <= rtol * (1 + max |want|); got on the device, want on
-- the CPU. Fails (does not raise) on a shape mismatch.
function M.close(t, got, want, name, rtol)
  rtol = rtol or 1e-4
  if type(got) == 'number' then
    return t.close(got, want, rtol, name, rtol)
  end
  local g = M.host(got):plain()
  local w = want:plain()
  if g:dim() ~= w:dim() or g:numel() ~= w:numel() then
    t.ok(false, name)
    t.diag('shape ' .. table.concat(g:size(), 'x') .. ' on the device, ' .. table.concat(w:size(), 'x') .. ' on the CPU')
    return false
  end
  if g.dtype ~= w.dtype then g = g:float(); w = w:float() end
  local diff = (g:float() - w:float()):abs():max()
  local scale = w:float():abs():max()
  local good = diff == diff and diff <= rtol * (1 + scale)
  if not t.ok(good, name) then t.diag(('max |device - cpu| = %g, max |cpu| = %g, rtol %g'):format(diff, scale, rtol)) end
  return good
end

-- Runs each case {name, fn}; a case that raises fails with its message.
function M.run(t, cases)
  if not M.available() then
    for _, c in ipairs(cases) do t.skip(c[1] .. ': needs a CUDA device') end
    return
  end
  for _, c in ipairs(cases) do
    local ok, err = xpcall(c[2], debug.traceback)
    if not ok then
      t.ok(false, c[1] .. ' raised')
      t.diag(err)
    end
  end
end

return M
