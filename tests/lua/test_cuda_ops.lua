-- The CUDA backend's tensor operations against the CPU's: elementwise,
-- reductions, softmax, GEMM. See devcheck.lua for the harness.
local t = require 'tap'
local crlab = require 'crlab'
local D = require 'devcheck'

crlab.manualSeed(11)
D.run(t, {
  {'binary add, contiguous', function()
    local a, b = crlab.randn(37, 65), crlab.randn(37, 65)
    D.close(t, D.to(a) + D.to(b), a + b, 'a + b')
  end},
})
t.done()
