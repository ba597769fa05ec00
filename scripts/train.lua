-- scripts/train.lua -- train one model with one loss:
--   crlab scripts/train.lua --dataset fashion-mnist --model cnn --loss crl --alpha 1.5 --beta 1 \
--       --epochs 10 --batch 128 --lr 0.1 --seed 1 --out runs/NAME [--resume]
-- `crlab scripts/train.lua --help` lists every option.
local train = require 'crlab.train'

-- option errors, and a --device that cannot be used here, end the run at
-- once with the message alone
local ok, opts = pcall(function()
  local o = train.parse(arg)
  if o then train.check_device(o) end
  return o
end)
if not ok then
  io.stderr:write(tostring(opts), '\n')
  os.exit(2, true)
end
if opts == nil then
  print(train.usage())
  return
end
local result = train.run(opts)
print(string.format('best test accuracy %.2f%% at epoch %d; metrics and checkpoints in %s', 100 * result.best_acc,
                    result.best_epoch, result.dir))
