-- crlab.tensor: the Tensor type, a metatype over the C struct crl_tensor.
--
-- Positions you index with from Lua are 1-based (t[1][1], t:narrow(1, 1, 2),
-- t:sum(2)), as in Torch7; negative dimensions count from the end (-1 is
-- the last). Values stored in tensors are what they are: class labels and
-- the indices returned by max/argmax are 0-based, as in the C core and the
-- dataset files. Methods return new tensors (PyTorch style); the ones ending
-- in _ (add_, mul_, fill_, ...) work in place and return self.
local ffi = require 'ffi'
local core = require 'crlab.core'
local C, check = core.C, core.check

local M = {}
local Tensor = {}      -- the methods
M.Tensor = Tensor

local tensor_ct = ffi.typeof('crl_tensor')
local sizes_ct = ffi.typeof('int64_t[5]')
local double_ct = ffi.typeof('double[1]')
local doubles_ct = ffi.typeof('double[?]')
local float_ptr_ct = ffi.typeof('float *')
local int32_ptr_ct = ffi.typeof('int32_t *')
local uint8_ptr_ct = ffi.typeof('uint8_t *')

local dtypes = {
  float32 = C.CRL_FLOAT32, float = C.CRL_FLOAT32,
  int32 = C.CRL_INT32, int = C.CRL_INT32,
  uint8 = C.CRL_UINT8, byte = C.CRL_UINT8,
}
local dtype_names = {[C.CRL_FLOAT32] = 'float32', [C.CRL_INT32] = 'int32', [C.CRL_UINT8] = 'uint8'}
local type_names = {
  [C.CRL_FLOAT32] = 'FloatTensor', [C.CRL_INT32] = 'IntTensor', [C.CRL_UINT8] = 'ByteTensor',
}

local function is_tensor(x)
  return type(x) == 'cdata' and ffi.istype(tensor_ct, x)
end
M.isTensor = is_tensor

local function dtype_of(name, level)
  if name == nil then return C.CRL_FLOAT32 end
  local d = dtypes[name]
  if d == nil then
    error("unknown dtype '" .. tostring(name) .. "' (use 'float32', 'int32' or 'uint8')", level or 3)
  end
  return d
end
M.dtype_of = dtype_of

---------------------------------------------------------------------------
-- C memory and the collector
--
-- The collector sees a tensor as its ~100-byte header, not as the
-- megabytes of storage behind it, so a loop that makes a new tensor per
-- iteration would otherwise pile up gigabytes before a cycle runs. As
-- Torch7 did from its allocator, a full collection runs when the C
-- storage of a device has grown by more than an allowance since the last
-- one: every header about to get new storage reads the live byte count of
-- its device (one FFI call, an atomic load), and only when the count has
-- left [low, high] does anything else happen. The allowance is
-- max(gc.minStep, gc.fraction * live): a working set that is large for
-- good reasons is not collected over and over, and a training step, which
-- makes no new storage, never triggers a collection.

local live_bytes = C.crl_storage_live_bytes
M.gc = {minStep = 256 * 2^20, fraction = 0.25, collections = 0}
local gc = M.gc
local gc_low, gc_high = {[0] = 0, [1] = 0}, {[0] = 0, [1] = 0}

local function gc_rebase(device)
  local live = tonumber(live_bytes(device))
  local step = math.max(gc.minStep, gc.fraction * live)
  gc_low[device], gc_high[device] = live - step, live + step
end

local function gc_check(device)
  local live = live_bytes(device)
  if live > gc_high[device] then
    collectgarbage('collect')
    gc.collections = gc.collections + 1
    gc_rebase(C.CRL_CPU)
    gc_rebase(C.CRL_CUDA)
  elseif live < gc_low[device] then
    gc_rebase(device) -- much was freed: measure the allowance from here
  end
end
gc_rebase(C.CRL_CPU)
gc_rebase(C.CRL_CUDA)

-- Sets the allowance (minStep in bytes, fraction of the live bytes) and
-- measures it from the current live bytes.
function M.setGCStep(minStep, fraction)
  gc.minStep, gc.fraction = minStep or gc.minStep, fraction or gc.fraction
  gc_rebase(C.CRL_CPU)
  gc_rebase(C.CRL_CUDA)
end

---------------------------------------------------------------------------

-- A Lua tensor is a crl_tensor struct that LuaJIT allocates and owns (a
-- struct, not a pointer: FFI pointers have built-in arithmetic that would
-- shadow the + and - operators). The metatype's __gc drops the storage
-- reference when the header is collected, so every tensor, view or not, is
-- released exactly once.
local function new_sized(dtype, device, ndim, sz)
  gc_check(device)
  local t = tensor_ct()
  t.ndim = 1 -- an empty tensor until init succeeds
  check(C.crl_tensor_init(t, dtype, device, ndim, sz))
  return t
end

local function new(dtype, device, dims)
  local n = #dims
  if n > 5 then error('at most 5 dimensions, got ' .. n, 3) end
  local sz = sizes_ct()
  for i = 1, n do
    local v = dims[i]
    if type(v) ~= 'number' or v < 0 or v % 1 ~= 0 then
      error('size ' .. i .. ' must be a non-negative integer, got ' .. tostring(v), 3)
    end
    sz[i - 1] = v
  end
  return new_sized(dtype, device, n, sz)
end
M.new = new

-- An output for a C op to resize: an empty tensor of this dtype/device.
local function out_like(t, dtype)
  gc_check(t.device)
  local o = tensor_ct()
  o.ndim, o.dtype, o.device = 1, dtype or t.dtype, t.device
  return o
end

local function view_of(t)
  local v = tensor_ct()
  check(C.crl_tensor_set(v, t))
  return v
end

-- Lua dimension (1-based, or negative from the end) -> C dimension.
local function cdim(d, level)
  if type(d) ~= 'number' or d % 1 ~= 0 or d == 0 then
    error('dimension must be a non-zero integer (1-based, or negative from the end), got ' ..
          tostring(d), level or 3)
  end
  return d > 0 and d - 1 or d
end

-- Lua dimension d of t -> its C dimension in [0, ndim), checked here so the
-- message names d as the caller wrote it.
local function tdim(t, d, level)
  local c = cdim(d, level + 1)
  if c < 0 then c = c + t.ndim end
  if c < 0 or c >= t.ndim then
    error('dimension ' .. d .. ' is out of range for a ' .. t.ndim .. '-dimensional tensor', level)
  end
  return c
end

-- Lua position i along C dimension c of t (1-based, or negative from the
-- end: -1 is the last) -> 1-based; what and the error name i as given.
local function position(t, c, i, what, level)
  if type(i) ~= 'number' or i % 1 ~= 0 then
    error(what .. ' must be an integer, got ' .. tostring(i), level)
  end
  return i < 0 and tonumber(t.sizes[c]) + i + 1 or i
end

-- The same for an element's index i along dimension d (c in C's count):
-- it must name one of the elements.
local function index_of(t, c, d, i, what, level)
  local k, n = position(t, c, i, what, level + 1), tonumber(t.sizes[c])
  if k < 1 or k > n then
    error(string.format('index %d is out of range for dimension %d of size %d', i, d, n), level)
  end
  return k
end

-- Accepts f(2, 3), f({2, 3}) or f(t:size()).
local function dims_of(...)
  local first = ...
  if type(first) == 'table' then return first end
  return {...}
end

---------------------------------------------------------------------------
-- construction

-- Walks a nested table, checking it is rectangular; numbers must all sit
-- at one depth (dims.leaf).
local function flatten(data, dims, depth, out, path)
  local n = #data
  if dims[depth] == nil then
    dims[depth] = n
  elseif dims[depth] ~= n then
    error(string.format('ragged table: element %s has %d entries, expected %d',
                        path ~= '' and path or 'at the top', n, dims[depth]), 4)
  end
  for i = 1, n do
    local v = data[i]
    local where = path .. '[' .. i .. ']'
    if type(v) == 'table' then
      if dims.leaf and dims.leaf <= depth then
        error('ragged table: element ' .. where .. ' is a table, expected a number', 4)
      end
      flatten(v, dims, depth + 1, out, where)
    elseif type(v) == 'number' or type(v) == 'boolean' then
      dims.leaf = dims.leaf or depth
      if dims.leaf ~= depth then
        error('ragged table: element ' .. where .. ' is a number, expected a table', 4)
      end
      out[#out + 1] = v == true and 1 or v == false and 0 or v
    else
      error('element ' .. where .. ' is a ' .. type(v) .. ', expected a number', 4)
    end
  end
end

-- crlab.tensor({{1, 2}, {3, 4}}, 'int32'), crlab.tensor(other_tensor)
function M.tensor(data, dtype)
  if is_tensor(data) then return data:clone() end
  if type(data) == 'number' then
    local t = new(dtype_of(dtype), C.CRL_CPU, {})
    check(C.crl_tensor_put(t, 0, data))
    return t
  end
  if type(data) ~= 'table' then
    error('crlab.tensor expects a (nested) table of numbers, got ' .. type(data), 2)
  end
  local dims, values = {}, {}
  flatten(data, dims, 1, values, '')
  dims.leaf = nil
  if #values == 0 then dims = {0} end
  local t = new(dtype_of(dtype), C.CRL_CPU, dims)
  local buf = doubles_ct(#values)
  for i = 1, #values do buf[i - 1] = values[i] end
  check(C.crl_tensor_from_doubles(t, buf, #values))
  return t
end

-- crlab.zeros(2, 3), crlab.zeros({2, 3}, 'int32')
local function sized(fill)
  return function(...)
    local args = {...}
    local dtype
    if type(args[#args]) == 'string' then dtype = table.remove(args) end
    local dims = type(args[1]) == 'table' and args[1] or args
    local t = new(dtype_of(dtype), C.CRL_CPU, dims)
    if fill then fill(t) end
    return t
  end
end
M.zeros = sized(nil)
M.empty = M.zeros
M.ones = sized(function(t) check(C.crl_tensor_fill(t, 1)) end)
M.rand = sized(function(t) check(C.crl_tensor_uniform(t, nil, 0, 1)) end)
M.randn = sized(function(t) check(C.crl_tensor_normal(t, nil, 0, 1)) end)

-- crlab.arange(n) = 0..n-1; crlab.arange(a, b[, step]) = a, a+step, ... < b
function M.arange(a, b, step)
  if b == nil then a, b = 0, a end
  step = step or 1
  if step == 0 then error('arange: step must not be 0', 2) end
  local n = math.max(0, math.ceil((b - a) / step))
  local t = new(C.CRL_FLOAT32, C.CRL_CPU, {n})
  local p = ffi.cast(float_ptr_ct, C.crl_tensor_data(t))
  for i = 0, n - 1 do p[i] = a + i * step end
  return t
end

-- A random permutation of 0..n-1 (int32), from the seeded generator.
function M.randperm(n)
  local t = new(C.CRL_INT32, C.CRL_CPU, {n})
  check(C.crl_tensor_randperm(t, nil))
  return t
end

function M.manualSeed(seed)
  if type(seed) ~= 'number' or seed < 0 or seed % 1 ~= 0 then
    error('manualSeed expects a non-negative integer, got ' .. tostring(seed), 2)
  end
  C.crl_generator_seed(C.crl_generator_default(), seed)
end

-- The generator state {seed, offset}; setRNGState restores it.
function M.getRNGState()
  local g = C.crl_generator_default()
  return {seed = tonumber(g.seed), offset = tonumber(g.offset)}
end

function M.setRNGState(state)
  local g = C.crl_generator_default()
  g.seed = state.seed
  g.offset = state.offset
end

---------------------------------------------------------------------------
-- shape and views

local size_mt = {
  __tostring = function(s) return table.concat(s, 'x') end,
}

function Tensor.size(t, d)
  if d ~= nil then
    local c = tdim(t, d, 3)
    return tonumber(t.sizes[c])
  end
  local s = {}
  for i = 0, t.ndim - 1 do s[i + 1] = tonumber(t.sizes[i]) end
  return setmetatable(s, size_mt)
end

function Tensor.stride(t, d)
  if d ~= nil then return tonumber(t.strides[cdim(d) % t.ndim]) end
  local s = {}
  for i = 0, t.ndim - 1 do s[i + 1] = tonumber(t.strides[i]) end
  return s
end

function Tensor.dim(t) return t.ndim end
Tensor.nDimension = Tensor.dim
function Tensor.numel(t) return tonumber(C.crl_tensor_numel(t)) end
Tensor.nElement = Tensor.numel
function Tensor.isContiguous(t) return C.crl_tensor_is_contiguous(t) == 1 end
Tensor.is_contiguous = Tensor.isContiguous
function Tensor.dtype_name(t) return dtype_names[t.dtype] end
function Tensor.is_cuda(t) return t.device == C.CRL_CUDA end

function Tensor.type(t)
  return 'crlab.' .. (t.device == C.CRL_CUDA and 'Cuda' or '') .. type_names[t.dtype]
end

function Tensor.view(t, ...)
  local dims = dims_of(...)
  local sz = sizes_ct()
  for i = 1, #dims do sz[i - 1] = dims[i] end
  local v = view_of(t)
  check(C.crl_tensor_view(v, t, #dims, sz))
  return v
end

-- Like view, but copies when the strides cannot express the new shape.
function Tensor.reshape(t, ...)
  if C.crl_tensor_is_contiguous(t) == 1 then return Tensor.view(t, ...) end
  return Tensor.view(t:contiguous(), ...)
end

function Tensor.transpose(t, d0, d1)
  local v = view_of(t)
  check(C.crl_tensor_transpose(v, t, cdim(d0), cdim(d1)))
  return v
end

function Tensor.t(t)
  if t.ndim ~= 2 then
    error('t() expects a matrix, got a ' .. t.ndim .. '-dimensional tensor of size ' ..
          tostring(t:size()), 2)
  end
  return Tensor.transpose(t, 1, 2)
end

-- narrow(dim, start, length), start 1-based as in Torch7 (negative from the
-- end); the range is checked here to name start and dim as given
function Tensor.narrow(t, d, start, length)
  local c = tdim(t, d, 3)
  local s = position(t, c, start, 'start', 3)
  if type(length) ~= 'number' or length % 1 ~= 0 then
    error('length must be an integer, got ' .. tostring(length), 2)
  end
  local n = tonumber(t.sizes[c])
  if s < 1 or length < 0 or s - 1 + length > n then
    error(string.format('start %d, length %d do not fit dimension %d of size %d', start, length, d, n), 2)
  end
  local v = view_of(t)
  check(C.crl_tensor_narrow(v, t, c, s - 1, length))
  return v
end

-- select(dim, index), index 1-based (negative from the end)
function Tensor.select(t, d, index)
  local c = tdim(t, d, 3)
  local i = index_of(t, c, d, index, 'index', 3)
  local v = view_of(t)
  check(C.crl_tensor_select(v, t, c, i - 1))
  return v
end

function Tensor.unsqueeze(t, d)
  local v = view_of(t)
  check(C.crl_tensor_unsqueeze(v, t, d > 0 and d - 1 or d))
  return v
end

function Tensor.squeeze(t, d)
  if d == nil then
    local dims = {}
    for i = 0, t.ndim - 1 do
      if t.sizes[i] ~= 1 then dims[#dims + 1] = tonumber(t.sizes[i]) end
    end
    return Tensor.reshape(t, dims)
  end
  local v = view_of(t)
  check(C.crl_tensor_squeeze(v, t, cdim(d)))
  return v
end

function Tensor.expand(t, ...)
  local dims = dims_of(...)
  local sz = sizes_ct()
  for i = 1, #dims do sz[i - 1] = dims[i] end
  local v = view_of(t)
  check(C.crl_tensor_expand(v, t, #dims, sz))
  return v
end

-- Layouts (t.layout, t:layoutName()): 'plain', or the blocked 'nChw16c' / 'nChw8c' that convolutions
-- pass to each other. t:plain() is t when plain, else a plain copy.
function Tensor.layoutName(t) return ffi.string(C.crl_layout_name(t.layout)) end
function Tensor.plain(t)
  if t.layout == 0 then return t end
  local out = M.new(t.dtype, t.device, {0})
  check(C.crl_tensor_reorder(out, t, 0))
  return out
end

function Tensor.contiguous(t)
  if C.crl_tensor_is_contiguous(t) == 1 then return t end
  local out = out_like(t)
  check(C.crl_tensor_contiguous(out, t))
  return out
end

function Tensor.clone(t)
  local out = out_like(t)
  check(C.crl_tensor_contiguous(out, t))
  return out
end

---------------------------------------------------------------------------
-- copies, fills, conversions

function Tensor.copy_(t, src)
  if not is_tensor(src) then error('copy expects a tensor, got ' .. type(src), 2) end
  check(C.crl_tensor_copy(t, src))
  return t
end
Tensor.copy = Tensor.copy_

function Tensor.fill_(t, v)
  check(C.crl_tensor_fill(t, v))
  return t
end
Tensor.fill = Tensor.fill_
function Tensor.zero_(t) return Tensor.fill_(t, 0) end
Tensor.zero = Tensor.zero_

function Tensor.uniform_(t, lo, hi)
  check(C.crl_tensor_uniform(t, nil, lo or 0, hi or 1))
  return t
end
Tensor.uniform = Tensor.uniform_

function Tensor.normal_(t, mean, std)
  check(C.crl_tensor_normal(t, nil, mean or 0, std or 1))
  return t
end
Tensor.normal = Tensor.normal_

-- to(dtype[, device]): a converted copy, or t itself when nothing changes.
local function convert(t, dtype, device)
  if t.dtype == dtype and t.device == device then return t end
  local out = new_sized(dtype, device, t.ndim, t.sizes)
  check(C.crl_tensor_copy(out, t))
  return out
end

function Tensor.float(t) return convert(t, C.CRL_FLOAT32, C.CRL_CPU) end
function Tensor.int(t) return convert(t, C.CRL_INT32, C.CRL_CPU) end
function Tensor.byte(t) return convert(t, C.CRL_UINT8, C.CRL_CPU) end
function Tensor.cpu(t) return convert(t, t.dtype, C.CRL_CPU) end
function Tensor.cuda(t) return convert(t, t.dtype, C.CRL_CUDA) end
function Tensor.to(t, dtype) return convert(t, dtype_of(dtype), t.device) end

function Tensor.totable(t)
  local n = Tensor.numel(t)
  local buf = doubles_ct(n > 0 and n or 1)
  check(C.crl_tensor_to_doubles(buf, t, n))
  if t.ndim == 0 then return buf[0] end
  local pos = 0
  local function build(d)
    local r = {}
    for i = 1, tonumber(t.sizes[d]) do
      if d == t.ndim - 1 then
        r[i] = buf[pos]
        pos = pos + 1
      else
        r[i] = build(d + 1)
      end
    end
    return r
  end
  return build(0)
end

-- The value of a one-element tensor.
function Tensor.item(t)
  if Tensor.numel(t) ~= 1 then
    error('item() needs a one-element tensor, got size ' .. tostring(t:size()), 2)
  end
  local v = double_ct()
  check(C.crl_tensor_get(v, t, 0))
  return v[0]
end

---------------------------------------------------------------------------
-- arithmetic

local binops = {
  add = C.CRL_OP_ADD, sub = C.CRL_OP_SUB, mul = C.CRL_OP_MUL, div = C.CRL_OP_DIV,
  pow = C.CRL_OP_POW, maximum = C.CRL_OP_MAX, minimum = C.CRL_OP_MIN,
  eq = C.CRL_OP_EQ, ne = C.CRL_OP_NE, lt = C.CRL_OP_LT, le = C.CRL_OP_LE,
  gt = C.CRL_OP_GT, ge = C.CRL_OP_GE,
}

local function binary(out, a, b, op)
  if is_tensor(b) then
    check(C.crl_tensor_binary(out, a, b, op))
  elseif type(b) == 'number' then
    check(C.crl_tensor_binary_scalar(out, a, b, op, 0))
  else
    error('expected a tensor or a number as the second operand, got ' .. type(b), 3)
  end
  return out
end

for name, op in pairs(binops) do
  Tensor[name] = function(a, b) return binary(out_like(a, C.CRL_FLOAT32), a, b, op) end
  Tensor[name .. '_'] = function(a, b) return binary(a, a, b, op) end
end
Tensor.cmul = Tensor.mul
Tensor.cdiv = Tensor.div

local unops = {
  neg = C.CRL_UN_NEG, abs = C.CRL_UN_ABS, exp = C.CRL_UN_EXP, log = C.CRL_UN_LOG,
  sqrt = C.CRL_UN_SQRT, tanh = C.CRL_UN_TANH, sigmoid = C.CRL_UN_SIGMOID,
  relu = C.CRL_UN_RELU, square = C.CRL_UN_SQUARE, floor = C.CRL_UN_FLOOR,
  ceil = C.CRL_UN_CEIL, sign = C.CRL_UN_SIGN,
}
for name, op in pairs(unops) do
  Tensor[name] = function(a)
    local out = out_like(a)
    check(C.crl_tensor_unary(out, a, op))
    return out
  end
  Tensor[name .. '_'] = function(a)
    check(C.crl_tensor_unary(a, a, op))
    return a
  end
end

function Tensor.clamp(a, lo, hi)
  local out = out_like(a)
  check(C.crl_tensor_clamp(out, a, lo or -math.huge, hi or math.huge))
  return out
end

---------------------------------------------------------------------------
-- reductions

local function all_reduce(fn, t)
  local v = double_ct()
  check(fn(v, t))
  return v[0]
end

function Tensor.sum(t, d, keepdim)
  if d == nil then return all_reduce(C.crl_tensor_sum_all, t) end
  local out = out_like(t, C.CRL_FLOAT32)
  check(C.crl_tensor_sum(out, t, cdim(d), keepdim and 1 or 0))
  return out
end

function Tensor.mean(t, d, keepdim)
  if d == nil then
    local n = Tensor.numel(t)
    if n == 0 then error('mean of an empty tensor', 2) end
    return all_reduce(C.crl_tensor_sum_all, t) / n
  end
  local out = out_like(t, C.CRL_FLOAT32)
  check(C.crl_tensor_mean(out, t, cdim(d), keepdim and 1 or 0))
  return out
end

-- max() -> number; max(dim) -> values (float32), indices (int32, 0-based)
function Tensor.max(t, d, keepdim)
  if d == nil then return all_reduce(C.crl_tensor_max_all, t) end
  local v, i = out_like(t, C.CRL_FLOAT32), out_like(t, C.CRL_INT32)
  check(C.crl_tensor_max(v, i, t, cdim(d), keepdim and 1 or 0))
  return v, i
end

function Tensor.min(t, d, keepdim)
  if d == nil then return all_reduce(C.crl_tensor_min_all, t) end
  local v, i = out_like(t, C.CRL_FLOAT32), out_like(t, C.CRL_INT32)
  check(C.crl_tensor_min(v, i, t, cdim(d), keepdim and 1 or 0))
  return v, i
end

-- argmax(dim): int32 0-based indices (class predictions compare with labels)
function Tensor.argmax(t, d, keepdim)
  local i = out_like(t, C.CRL_INT32)
  check(C.crl_tensor_max(nil, i, t, cdim(d or -1), keepdim and 1 or 0))
  return i
end

function Tensor.argmin(t, d, keepdim)
  local i = out_like(t, C.CRL_INT32)
  check(C.crl_tensor_min(nil, i, t, cdim(d or -1), keepdim and 1 or 0))
  return i
end

---------------------------------------------------------------------------
-- linear algebra and softmax

-- a:mm(b): matrix product; transposed views go to BLAS without a copy.
function Tensor.mm(a, b)
  if not is_tensor(b) then error('mm expects a tensor, got ' .. type(b), 2) end
  local out = out_like(a, C.CRL_FLOAT32)
  check(C.crl_tensor_gemm(out, a, b, 0, 0, 1, 0))
  return out
end
Tensor.matmul = Tensor.mm

function Tensor.softmax(t, d)
  local out = out_like(t, C.CRL_FLOAT32)
  check(C.crl_tensor_softmax(out, t, cdim(d or -1)))
  return out
end

function Tensor.log_softmax(t, d)
  local out = out_like(t, C.CRL_FLOAT32)
  check(C.crl_tensor_log_softmax(out, t, cdim(d or -1)))
  return out
end
Tensor.logsoftmax = Tensor.log_softmax

---------------------------------------------------------------------------
-- printing, in the manner of Torch7

local function fmt_for(values)
  local all_int, maxabs, minabs = true, 0, math.huge
  for i = 1, #values do
    local v = values[i]
    if v ~= v or v == math.huge or v == -math.huge then
      all_int = false
    else
      if v % 1 ~= 0 then all_int = false end
      local a = math.abs(v)
      if a > maxabs then maxabs = a end
      if a > 0 and a < minabs then minabs = a end
    end
  end
  if all_int and maxabs < 1e9 then return '%d' end
  if maxabs >= 1e5 or (minabs < 1e-3 and minabs ~= math.huge) then return '%.4e' end
  return '%.4f'
end

local function fmt_value(f, v)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  return string.format(f, v)
end

local function matrix_lines(get, rows, cols, f, width, lines, prefix_row)
  for r = 1, rows do
    local parts = {}
    for c = 1, cols do
      parts[c] = string.format('%' .. width .. 's', fmt_value(f, get(r, c)))
    end
    lines[#lines + 1] = table.concat(parts, ' ')
  end
end

local MAX_PRINT = 2000

function M.tostring(t)
  local footer = string.format('[crlab.%s%s of size %s]',
                               t.device == C.CRL_CUDA and 'Cuda' or '', type_names[t.dtype],
                               t.ndim == 0 and 'scalar' or tostring(Tensor.size(t)))
  local n = Tensor.numel(t)
  if n == 0 then return '[crlab.' .. type_names[t.dtype] .. ' with no elements]' end
  if n > MAX_PRINT then
    local mean = t.dtype == C.CRL_FLOAT32 and t.device == C.CRL_CPU and Tensor.mean(t) or nil
    return string.format('%s\n(%d elements not shown%s)', footer, n,
                         mean and string.format('; mean %.4g, min %.4g, max %.4g', mean,
                                                Tensor.min(t), Tensor.max(t)) or '')
  end
  local buf = doubles_ct(n)
  check(C.crl_tensor_to_doubles(buf, t, n))
  local values = {}
  for i = 1, n do values[i] = buf[i - 1] end
  local f = fmt_for(values)
  -- every column has room for a sign, as Torch7 prints
  local width = 0
  for i = 1, n do width = math.max(width, #fmt_value(f, math.abs(values[i]))) end
  width = width + 1
  local lines = {}
  if t.ndim == 0 then
    lines[1] = fmt_value(f, values[1])
  elseif t.ndim == 1 then
    for i = 1, n do lines[i] = string.format('%' .. width .. 's', fmt_value(f, values[i])) end
  else
    local rows, cols = tonumber(t.sizes[t.ndim - 2]), tonumber(t.sizes[t.ndim - 1])
    local per = rows * cols
    local outer = n / per
    for o = 0, outer - 1 do
      if t.ndim > 2 then
        -- the index of this matrix, e.g. (2,1,.,.)
        local idx, rem = {}, o
        for d = t.ndim - 3, 0, -1 do
          local s = tonumber(t.sizes[d])
          idx[d + 1] = rem % s + 1
          rem = math.floor(rem / s)
        end
        lines[#lines + 1] = '(' .. table.concat(idx, ',') .. ',.,.) = '
      end
      matrix_lines(function(r, c) return values[o * per + (r - 1) * cols + c] end,
                   rows, cols, f, width, lines)
      if t.ndim > 2 and o < outer - 1 then lines[#lines + 1] = '' end
    end
  end
  lines[#lines + 1] = footer
  return table.concat(lines, '\n')
end

---------------------------------------------------------------------------
-- the metatype: indexing, operators

local function elem_ptr(t)
  local p = t.storage.data
  if t.dtype == C.CRL_FLOAT32 then return ffi.cast(float_ptr_ct, p) end
  if t.dtype == C.CRL_INT32 then return ffi.cast(int32_ptr_ct, p) end
  return ffi.cast(uint8_ptr_ct, p)
end

local function check_index(t, i, level)
  if type(i) ~= 'number' or i % 1 ~= 0 then
    error('tensor index must be an integer, got ' .. tostring(i), level)
  end
  if t.ndim == 0 then error('cannot index a scalar tensor; use :item()', level) end
  return index_of(t, 0, 1, i, 'tensor index', level + 1)
end

local mt = {}

function mt.__index(t, k)
  if type(k) == 'number' then
    k = check_index(t, k, 2)
    if t.ndim == 1 then
      if t.device == C.CRL_CPU then
        return tonumber(elem_ptr(t)[t.offset + (k - 1) * t.strides[0]])
      end
      local v = double_ct()
      check(C.crl_tensor_get(v, t, k - 1))
      return v[0]
    end
    return Tensor.select(t, 1, k)
  end
  return Tensor[k]
end

function mt.__newindex(t, k, v)
  k = check_index(t, k, 2)
  if t.ndim == 1 and type(v) == 'number' then
    check(C.crl_tensor_put(t, k - 1, v))
    return
  end
  local row = Tensor.select(t, 1, k)
  if type(v) == 'number' then
    check(C.crl_tensor_fill(row, v))
  elseif is_tensor(v) then
    check(C.crl_tensor_copy(row, v))
  else
    error('cannot assign a ' .. type(v) .. ' to a tensor slice', 2)
  end
end

-- Operators follow PyTorch: elementwise with broadcasting; a:mm(b) is the
-- matrix product.
local function arith(op, rop)
  return function(a, b)
    if is_tensor(a) then return binary(out_like(a, C.CRL_FLOAT32), a, b, op) end
    local out = out_like(b, C.CRL_FLOAT32)
    check(C.crl_tensor_binary_scalar(out, b, a, rop or op, 1))
    return out
  end
end
mt.__add = arith(C.CRL_OP_ADD)
mt.__sub = arith(C.CRL_OP_SUB)
mt.__mul = arith(C.CRL_OP_MUL)
mt.__div = arith(C.CRL_OP_DIV)
mt.__pow = arith(C.CRL_OP_POW)
mt.__unm = function(a) return Tensor.neg(a) end
mt.__len = function(t) return t.ndim > 0 and tonumber(t.sizes[0]) or 1 end
mt.__tostring = M.tostring
mt.__gc = function(t) C.crl_tensor_release(t) end

ffi.metatype(tensor_ct, mt)

return M
