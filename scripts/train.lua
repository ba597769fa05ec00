-- scripts/train.lua -- train one model with one loss:
--   crlab scripts/train.lua --dataset fashion-mnist --model cnn --loss crl --alpha 1.5 --beta 1 \
--       --epochs 10 --batch 128 --lr 0.1 --seed 1 --out runs/NAME [--resume]
-- `crlab scripts/train.lua --help` lists every option.
local train = require 'crlab.train'

local ok, opts = pcall(train.parse, arg)
if not ok then
  io.stderr:write(tostring(opts), '\n')
  os.exit(2)
end
if opts == nil then
  print(train.usage())
  return
end
local result = train.run(opts)
print(string.format('best test accuracy %.2f%% at epoch %d; metrics and checkpoints in %s', 100 * result.best_acc,
                    result.best_epoch, result.dir))
