-- scripts/experiments/custom_model.lua -- a model defined inline: a function
-- of the dataset's shape (channels, classes, size) returning a module, called
-- after the generator is seeded, so --seed fixes its initial weights.
--   crlab scripts/train.lua --experiment scripts/experiments/custom_model.lua [--epochs 1]
local nn = crlab.nn

local function model(info)
  local c, s = info.channels, info.size
  return nn.Sequential(
    nn.Conv2d(c, 16, 3, {padding = 1, bias = false}), nn.BatchNorm2d(16, {relu = true}),
    nn.Conv2d(16, 32, 3, {padding = 1, stride = 2, bias = false}), nn.BatchNorm2d(32, {relu = true}),
    nn.Conv2d(32, 64, 3, {padding = 1, stride = 2, bias = false}), nn.BatchNorm2d(64, {relu = true}),
    nn.GlobalAvgPool2d(), nn.Flatten(),
    nn.Linear(64, info.classes))
end

return {
  name = 'fmnist-tinyconv',       -- the model's name in checkpoints and the run folder
  dataset = 'fashion-mnist',
  model = model,
  loss = crlab.loss.crl{alpha = 1.5, beta = 1},
  optimizer = {'sgd', momentum = 0.9, nesterov = true, weightDecay = 5e-4},
  lr = 0.1, schedule = 'cosine', epochs = 3, batch = 128,
}
