-- scripts/make_fixture.lua -- writes a small synthetic dataset in the exact
-- CIFAR-10 binary layout (5 training batches, a test batch and
-- batches.meta.txt) to try the pipeline without downloading anything:
--   crlab scripts/make_fixture.lua /tmp/cifar-fixture [images per batch]
--   crlab scripts/show.lua --dataset cifar10 --data /tmp/cifar-fixture
-- Class k is a disc of hue k/10 on a dark background, at a random place.
local dir = arg[1] or error('usage: crlab scripts/make_fixture.lua DIR [N]', 0)
local n = tonumber(arg[2]) or 200
os.execute("mkdir -p '" .. dir .. "'")
crlab.manualSeed(7)
local names = {'red', 'orange', 'yellow', 'lime', 'green', 'teal', 'cyan', 'blue', 'violet', 'pink'}
local function hue(h)
  local r, g, b = math.abs(h * 6 - 3) - 1, 2 - math.abs(h * 6 - 2), 2 - math.abs(h * 6 - 4)
  local function c(v) return math.floor(255 * math.max(0, math.min(1, v))) end
  return c(r), c(g), c(b)
end
local u = crlab.rand(n * 6 * 4)
local k = 0
local function draw() k = k + 1 return u[k] end
local function batch(path, count)
  local f = assert(io.open(path, 'wb'))
  for i = 1, count do
    local label = (i * 3 + math.floor(draw() * 10)) % 10
    local cx, cy, rad = 8 + draw() * 16, 8 + draw() * 16, 5 + draw() * 4
    local rgb = {hue(label / 10)}
    local planes = {{}, {}, {}}
    for c = 1, 3 do
      for y = 0, 31 do
        for x = 0, 31 do
          local inside = (x - cx) ^ 2 + (y - cy) ^ 2 <= rad ^ 2
          planes[c][#planes[c] + 1] = string.char(inside and rgb[c] or 20 + (x + y) % 8)
        end
      end
    end
    f:write(string.char(label), table.concat(planes[1]), table.concat(planes[2]), table.concat(planes[3]))
  end
  f:close()
end
for b = 1, 5 do batch(dir .. '/data_batch_' .. b .. '.bin', n) end
batch(dir .. '/test_batch.bin', n)
local meta = assert(io.open(dir .. '/batches.meta.txt', 'w'))
meta:write(table.concat(names, '\n'), '\n')
meta:close()
print(string.format('wrote %d training and %d test images in the CIFAR-10 binary layout to %s', 5 * n, n, dir))
