-- scripts/show.lua -- a PNG grid of augmented training samples with their
-- class names, to see what the network sees.
--   crlab scripts/show.lua [--dataset fashion-mnist] [--data PATH] [--n 32] [--cols 8]
--                          [--split train|test] [--plain] [--seed 1] [--out samples.png]
-- --plain shows the images without the training augmentation.
local data = require 'crlab.data'
local image = require 'crlab.image'
local T = require 'crlab.transforms'

local o = {dataset = 'fashion-mnist', data = nil, n = 32, cols = 8, split = 'train', seed = 1, out = 'samples.png'}
local i = 1
while i <= #arg do
  local k = arg[i]:match('^%-%-(.+)$')
  if k == 'plain' then
    o.plain = true
    i = i + 1
  elseif k and o[k] ~= nil or k == 'data' then
    local v = arg[i + 1]
    o[k] = tonumber(v) or v
    i = i + 2
  else
    io.stderr:write("show: unknown argument '" .. arg[i] .. "'\n")
    os.exit(2)
  end
end

crlab.manualSeed(o.seed)
local ds = data.load(o.dataset, o.data)
local split = o.split == 'test' and ds.test or ds.train
local pipe = o.plain and ds.recipe.test or ds.recipe.train
-- the normalisation step tells how to undo it for display
local mean, std = {0, 0, 0}, {1, 1, 1}
for _, t in ipairs(pipe.list) do
  if t.name:find('^normalize') then mean, std = t.mean, t.std end
end
local loader = data.loader(split, {batch = o.n, transform = pipe, threads = 2, channels = ds.channels})
local _, x, y = loader:epoch()()
local n = x:size(1)
local imgs = crlab.zeros({n, x:size(2), x:size(3), x:size(4)}, 'uint8')
local captions = {}
for k = 1, n do
  imgs[k]:copy(image.denormalize(x[k], mean, std))
  captions[k] = ds.classes[y[k] + 1] or tostring(y[k])
end
loader:close()
local drawn = image.saveCaptioned(o.out, imgs, captions, o.cols)
print(string.format('wrote %s: %d %s samples of %s%s (%s)', o.out, n, o.plain and 'plain' or 'augmented', o.dataset,
                    drawn and ' with class names' or ' (install gnuplot-nox for class names)', tostring(pipe)))
