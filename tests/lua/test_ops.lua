-- The op layer: the device of an operation comes from its arguments, a
-- mix of devices is refused naming the operation and both devices, and a
-- device without a kernel fails in one place. Checked with tensor headers
-- that claim the CUDA device (no GPU is needed: the op layer refuses them
-- before any memory is touched). Then modules moving between devices.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local core = require 'crlab.core'
local nn = require 'crlab.nn'
local C = crlab.C

-- a header that says "CUDA", with no storage behind it
local function fake_cuda(...)
  local x = crlab.zeros(...)
  local h = ffi.new('crl_tensor')
  h.ndim, h.dtype, h.device, h.layout = x.ndim, x.dtype, C.CRL_CUDA, 0
  for d = 0, x.ndim - 1 do h.sizes[d], h.strides[d] = x.sizes[d], x.strides[d] end
  return h
end

local function fails(rc, pattern, name)
  local msg = core.last_error()
  t.ok(rc ~= 0 and msg:find(pattern, 1, true) ~= nil, name .. ': ' .. msg)
end

local a, g = crlab.randn(2, 3), fake_cuda(2, 3)
local out = crlab.tensor(0)
fails(C.crl_tensor_binary(out, a, g, C.CRL_OP_ADD),
      "crl_tensor_binary: 'a' (2, 3) is on the CPU and 'b' (2, 3) on the CUDA", 'a CPU and a CUDA operand are refused')
-- a CUDA operand goes to the CUDA backend, which here says why it cannot run
-- (built without CUDA, or no device behind the plugin)
do
  local rc = C.crl_tensor_unary(out, g, C.CRL_UN_EXP)
  local msg = core.last_error()
  local why = false
  for _, w in ipairs{'built without CUDA', 'no CUDA device is available', 'could not be loaded'} do
    why = why or msg:find(w, 1, true) ~= nil
  end
  t.ok(rc ~= 0 and why, 'a CUDA operand reaches the CUDA backend and fails with the reason: ' .. msg)
end
local spec = ffi.new('crl_loss_spec', C.CRL_LOSS_CRL, C.CRL_REDUCE_MEAN, 1.5, 1, 0, 0)
local v = ffi.new('double[1]')
fails(C.crl_loss_forward(v, nil, fake_cuda(4, 3), crlab.tensor({0, 1, 2, 0}, 'int32'), spec),
      "'logits' (4, 3) is on the CUDA and 'labels' (4) on the CPU", 'loss: logits and labels on two devices')
local m = nn.Conv2d(3, 4, 3)
fails(C.crl_conv2d_plan_forward(m:plan(), out, fake_cuda(1, 3, 5, 5), m.weight, nil, 0),
      "'in' (1, 3, 5, 5) is on the CUDA and 'weight' (4, 3, 3, 3) on the CPU", 'conv: input and weight on two devices')
local p, gr = crlab.randn(10), fake_cuda(10)
fails(C.crl_sgd_step(p, nil, gr, nil, 0.1, 0, 0, 0), "'params' (10) is on the CPU and 'grads' (10) on the CUDA",
      'sgd: parameters and gradients on two devices')
-- inputs that a kernel wrote earlier still vote
local x4, st = crlab.randn(4, 3), crlab.randn(3)
fails(C.crl_batchnorm_backward(crlab.tensor(0), nil, nil, x4, x4, nil, fake_cuda(3), st, 1, nil),
      "'save_mean' (3) on the CUDA", 'batch norm backward: saved statistics on another device')
fails(C.crl_relu_backward(crlab.tensor(0), x4, fake_cuda(4, 3)), "'out' (4, 3) on the CUDA",
      'ReLU backward: the forward output on another device')
local pin = crlab.randn(1, 1, 4, 4)
fails(C.crl_maxpool2d_backward(crlab.tensor(0), crlab.randn(1, 1, 2, 2), fake_cuda(1, 1, 2, 2), pin),
      "'indices' (1, 1, 2, 2) on the CUDA", 'max pooling backward: indices on another device')
-- outputs do not vote: a kernel moves them to its device
local o = fake_cuda(2, 3)
t.ok(C.crl_tensor_binary(o, a, a, C.CRL_OP_ADD) == 0 and o.device == C.CRL_CPU and o.storage ~= nil,
     'an output on another device is re-made on the device of the inputs')
-- kernels speak as the public operation
fails(C.crl_tensor_binary(out, crlab.randn(2), crlab.randn(3), C.CRL_OP_ADD), 'crl_tensor_binary: shapes (2) and (3)',
      "a kernel's message names the public operation")

-- modules between devices
crlab.manualSeed(3)
local model = crlab.models.build('resnet8', {channels = 3, classes = 10, size = 16})
local params, grads = model:getParameters()
local x = crlab.randn(2, 3, 16, 16)
local y = model:forward(x):clone()
t.ok(model:type('cpu') == model and model.flatParameters == params and (model:forward(x) - y):abs():max() == 0,
     'Module:type(cpu) on a CPU model changes nothing')
local ok, err = pcall(function() model:cuda() end)
if C.crl_cuda_device_count() == 0 then
  t.ok(not ok and (tostring(err):find('no CUDA device', 1, true) or tostring(err):find('built without CUDA', 1, true)),
       'model:cuda() without a GPU fails with a clear message: ' .. tostring(err))
  t.ok((model:forward(x) - y):abs():max() == 0, 'and the model still runs on the CPU after the failed move')
else
  t.ok(ok and model.flatParameters.device == C.CRL_CUDA, 'model:cuda() moves the parameter slab')
  model:float()
  t.ok(model.flatParameters.device == C.CRL_CPU and (model:forward(x) - y):abs():max() == 0,
       'and model:float() brings it back with the same output')
end
local opt = crlab.optim.sgd(params, grads, {momentum = 0.9, weightDecay = 1e-4})
t.ok(opt.buf.device == params.device and opt.decay.device == params.device, 'optimiser state follows the parameters')
t.errors(function() model:type('tpu') end, "device 'cuda' or 'cpu'", 'an unknown device is refused')
t.errors(function() model.modules[1]:type('cpu') end, 'views of a parameter slab',
         'moving one layer out of a model that owns the slab is refused')
t.done()
