// The demo clinical app in its own process, for `npm run bench` and the profile script, so
// that its CPU use is not counted against Wardgate or the bare http-proxy. Prints the app's
// URL on one line, then serves until the parent process ends or disconnects.
import { startDemoApp } from '../../demo/app/server.ts';

const app = await startDemoApp({ port: 0, host: '127.0.0.1' });
process.stdout.write(`${app.url}\n`);
process.on('disconnect', () => {
  app.close().then(() => process.exit(0), () => process.exit(1));
});
