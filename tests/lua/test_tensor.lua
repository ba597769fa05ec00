-- The Lua Tensor: construction, 1-based indexing, views, operators,
-- reductions, printing, dtype conversion, generator seeding, memory
-- ownership and the errors bad calls raise.
local t = require 'tap'
local crlab = require 'crlab'

-- construction and shape
local a = crlab.tensor{{1, 2, 3}, {4, 5, 6}}
t.eq(tostring(a:size()), '2x3', 'crlab.tensor of a nested table has size 2x3')
t.eq(a:dim(), 2, 'dim()')
t.eq(a:numel(), 6, 'numel()')
t.eq(a:size(2), 3, 'size(2)')
t.eq(a:size(-1), 3, 'size(-1) counts from the end')
t.eq(a[1][1], 1, 't[1][1] is the first element (1-based)')
t.eq(a[2][3], 6, 't[2][3] is the last element')
t.eq(a[-1][-1], 6, 'negative indices count from the end')
t.eq(a:type(), 'crlab.FloatTensor', 'default dtype is float32')
local labels = crlab.tensor({0, 2, 1}, 'int32')
t.eq(labels:type(), 'crlab.IntTensor', "crlab.tensor({...}, 'int32')")
t.eq(labels[2], 2, 'labels keep their 0-based values')
t.eq(crlab.zeros(2, 3):sum(), 0, 'zeros(2, 3)')
t.eq(crlab.ones({2, 3}, 'int32'):sum(), 6, "ones({2, 3}, 'int32')")
t.eq(crlab.zeros(4, 'uint8'):type(), 'crlab.ByteTensor', "zeros(4, 'uint8')")
t.eq(crlab.tensor(3.5):item(), 3.5, 'a scalar tensor and item()')
t.eq(crlab.arange(5):sum(), 10, 'arange(5) is 0..4')
t.eq(#crlab.tensor{}, 0, 'an empty table gives an empty tensor')

-- printing in the manner of Torch7
t.eq(tostring(a), ' 1  2  3\n 4  5  6\n[crlab.FloatTensor of size 2x3]', 'tostring of an integer matrix')
t.eq(tostring(crlab.tensor{0.5, -1.25}), ' 0.5000\n-1.2500\n[crlab.FloatTensor of size 2]',
     'tostring of a float vector')
t.ok(tostring(crlab.zeros(2, 2, 2)):find('(2,.,.) =', 1, true), 'a 3-d tensor prints its slices')
t.ok(tostring(crlab.zeros(100, 100)):find('10000 elements not shown', 1, true),
     'a large tensor prints a summary')

-- views share memory
local v = a:t()
t.eq(v[3][1], 3, 't() transposes')
t.ok(not v:isContiguous(), 'a transpose is not contiguous')
v[1][2] = 40
t.eq(a[2][1], 40, 'writing through a view changes the original')
a[2][1] = 4
local row = a[2]
t.eq(row:dim(), 1, 't[i] of a matrix is a row view')
row:fill(7)
t.eq(a:sum(), 6 + 21, 'fill through a row view')
a[2] = crlab.tensor{4, 5, 6}
t.eq(a:sum(), 21, 'assigning a tensor to t[i] copies into the row')
t.eq(a:narrow(2, 2, 2):sum(), 2 + 3 + 5 + 6, 'narrow(dim, start, length) is 1-based')
t.eq(a:select(1, 2):sum(), 15, 'select(1, 2)')
t.eq(tostring(a:view(3, 2):size()), '3x2', 'view(3, 2)')
t.eq(tostring(a:view(-1):size()), '6', 'view(-1)')
t.eq(a:t():reshape(6)[2], 4, 'reshape copies a transposed tensor when it must')
t.eq(tostring(a:unsqueeze(1):size()), '1x2x3', 'unsqueeze(1)')
t.eq(a:clone():add_(1):sum(), 27, 'add_ works in place on a clone')
t.eq(a:sum(), 21, '... and leaves the original alone')

-- operators: elementwise, broadcasting (PyTorch semantics)
local b = crlab.tensor{10, 20, 30}
t.eq((a + b)[2][3], 36, 'a + b broadcasts a (3) vector over the rows of (2, 3)')
t.eq((a - 1)[1][1], 0, 'a - 1')
t.eq((1 - a)[1][1], 0, '1 - a')
t.eq((a * a)[2][2], 25, 'a * a is elementwise')
t.eq((a / 2)[1][2], 1, 'a / 2')
t.eq((2 / a)[1][2], 1, '2 / a')
t.eq((-a)[1][1], -1, '-a')
t.eq((a ^ 2)[2][3], 36, 'a ^ 2')
t.eq(a:mm(a:t())[1][1], 14, 'a:mm(a:t()) is the matrix product')
t.eq(crlab.mm(a:t(), a)[3][3], 45, 'crlab.mm with a transposed first operand')
t.eq(a:eq(crlab.tensor{1, 0, 3}):sum(), 2, 'eq compares elementwise (1 where equal)')

-- reductions
t.eq(a:sum(), 21, 'sum() of all elements is a number')
t.eq(tostring(a:sum(1)), ' 5\n 7\n 9\n[crlab.FloatTensor of size 3]', 'sum(1) sums the rows away')
t.eq(tostring(a:sum(2, true):size()), '2x1', 'sum(2, true) keeps the dimension')
t.eq(a:mean(), 3.5, 'mean()')
t.eq(a:max(), 6, 'max()')
local vals, idx = a:max(2)
t.eq(vals[2], 6, 'max(2) values')
t.eq(idx[1], 2, 'max(2) indices are 0-based class indices')
t.eq(idx:type(), 'crlab.IntTensor', 'indices are int32')
t.eq(a:argmax(2):eq(crlab.tensor({2, 2}, 'int32')):sum(), 2, 'argmax compares with 0-based labels')
local sm = crlab.tensor{{1, 2, 3}}:softmax(2)
t.close(sm:sum(), 1, 1e-6, 'softmax rows sum to 1')
t.close(crlab.tensor{{1, 2, 3}}:log_softmax(2):exp()[1][3], sm[1][3], 1e-6, 'log_softmax = log(softmax)')

-- conversion
local f = crlab.tensor{1.7, -2.7}
t.eq(f:int()[1], 1, 'float():int() truncates toward zero')
t.eq(f:int()[2], -2, '... also for negative values')
t.eq(f:int():float():type(), 'crlab.FloatTensor', 'int():float()')
t.eq(type(a:totable()[2]), 'table', 'totable() gives nested tables')
t.eq(a:totable()[2][3], 6, 'totable() keeps the values')

-- the generator
crlab.manualSeed(123)
local r1 = crlab.randn(5)
local p1 = crlab.randperm(6)
crlab.manualSeed(123)
local r2 = crlab.randn(5)
local p2 = crlab.randperm(6)
t.eq((r1 - r2):abs():sum(), 0, 'manualSeed makes randn reproducible')
t.eq(p1:eq(p2):sum(), 6, 'manualSeed makes randperm reproducible')
local state = crlab.getRNGState()
local u1 = crlab.rand(3)
crlab.setRNGState(state)
t.eq((crlab.rand(3) - u1):abs():sum(), 0, 'getRNGState / setRNGState replay the stream')

-- ownership: views keep storage alive; garbage collection frees it all
local function make_view()
  local big = crlab.arange(1000)
  return big:narrow(1, 11, 5)
end
local kept = make_view()
collectgarbage()
collectgarbage()
t.eq(kept[1], 10, 'a view keeps its storage alive after its parent is collected')
local before = collectgarbage('count')
for _ = 1, 2000 do local x = crlab.zeros(10, 10) + 1 end
-- twice: a cycle runs the finalisers of the tensors it finds dead, and
-- frees their headers only in the next (once in 25 make asan runs the
-- first cycle met headers an earlier, incremental one had finalised)
collectgarbage()
collectgarbage()
t.ok(collectgarbage('count') < before + 200, 'tensors made in a loop are collected (4000 headers, ~100 bytes each)')

-- errors: clear messages, no crash
t.errors(function() return a[3] end, 'index 3 is out of range for dimension 1 of size 2',
         'a[3] on a 2-row tensor')
t.errors(function() return a + crlab.zeros(4) end, 'do not broadcast', '(2,3) + (4)')
t.errors(function() return a:view(4) end, 'cannot view', 'view(4) of 6 elements')
t.errors(function() return a:mm(a) end, 'inner sizes', 'mm of (2,3) by (2,3)')
t.errors(function() return crlab.tensor{{1, 2}, {3}} end, 'ragged table', 'a ragged table')
t.errors(function() return crlab.tensor{{1, 2}, 'x'} end, 'element [2] is a string', 'a string in a table')
t.errors(function() return crlab.zeros(2, 'float64') end, "unknown dtype 'float64'", 'an unknown dtype')
t.errors(function() return crlab.zeros(-1) end, 'non-negative', 'a negative size')
t.errors(function() return a:sum(3) end, 'out of range', 'sum over a missing dimension')
t.errors(function() return a:narrow(2, 3, 2) end, 'do not fit', 'narrow past the end')
t.errors(function() return crlab.tensor({1}, 'int32') + 1 end, 'float32', 'arithmetic on int32')
t.errors(function() return crlab.manualSeed(-1) end, 'non-negative integer', 'a negative seed')
t.errors(function() return a:item() end, 'one-element', 'item() of a matrix')

-- negative positions count from the end; messages in the caller's 1-based numbers
do
  local m = crlab.tensor({{1, 2, 3}, {4, 5, 6}})
  t.eq(m:select(1, -1):sum(), 15, 'select(1, -1) is the last row')
  t.eq(m:select(2, -3):sum(), 5, 'select(2, -3) is the first column')
  t.eq(m:narrow(2, -1, 1):sum(), 9, 'narrow(2, -1, 1) is the last column')
  t.eq(m:narrow(2, -2, 2):sum(), 16, 'narrow(2, -2, 2) is the last two columns')
  t.eq(m:narrow(2, 4, 0):numel(), 0, 'narrow(2, 4, 0): an empty narrow just past the end')
  t.eq(m[-1][-1], 6, 'm[-1][-1] is the last element')
  t.errors(function() return m:select(1, 3) end, 'index 3 is out of range for dimension 1 of size 2',
           'select(1, 3) names the index and dimension as given')
  t.errors(function() return m:select(1, -3) end, 'index -3 is out of range for dimension 1 of size 2',
           'select(1, -3) names the index as given')
  t.errors(function() return m:select(1, 0) end, 'index 0 is out of range', 'select(1, 0)')
  t.errors(function() return m:select(3, 1) end, 'dimension 3 is out of range for a 2-dimensional tensor',
           'select(3, 1) names the dimension as given')
  t.errors(function() return m:select(1, 1.5) end, 'must be an integer', 'select(1, 1.5)')
  t.errors(function() return m:narrow(2, 3, 2) end, 'start 3, length 2 do not fit dimension 2 of size 3',
           'narrow(2, 3, 2) names start and dimension as given')
  t.errors(function() return m:narrow(2, -4, 1) end, 'start -4, length 1 do not fit dimension 2 of size 3',
           'narrow(2, -4, 1)')
  t.errors(function() return m:narrow(2, 0, 1) end, 'start 0, length 1 do not fit', 'narrow(2, 0, 1)')
  t.errors(function() return m:narrow(-3, 1, 1) end, 'dimension -3 is out of range', 'narrow(-3, 1, 1)')
  t.errors(function() return m[-3] end, 'index -3 is out of range for dimension 1 of size 2', 'm[-3]')
end
t.done()
