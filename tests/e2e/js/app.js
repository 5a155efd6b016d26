// The original source of the test bundle: the e2e test expects these names and lines back.
function parsePrice(text) {
  const value = Number(text);
  if (Number.isNaN(value)) {
    throw new Error("bad price: " + text);
  }
  return value;
}

function checkout(cart) {
  return parsePrice(cart.price);
}

module.exports = { checkout };
