// Loads the minified bundle under the real @sentry/node and reports the error it throws.
const Sentry = require("@sentry/node");
const [dsn, bundle, release] = process.argv.slice(2);
Sentry.init({ dsn, release, defaultIntegrations: false });
const app = require(bundle);
try {
  app.checkout({ price: "abc" });
} catch (error) {
  Sentry.captureException(error);
}
Sentry.flush(10000).then((ok) => process.exit(ok ? 0 : 3));
