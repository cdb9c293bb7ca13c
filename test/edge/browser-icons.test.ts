import t from 'tap';
import { isBrowserIconPath } from '../../proxy/pipeline/response-observation.ts';

t.test('browser icon paths', async (t) => {
  for (const path of ['/favicon.ico', '/FAVICON.ICO', '/apple-touch-icon.png', '/apple-touch-icon-precomposed.png', '/apple-touch-icon-180x180.png', '/apple-touch-icon-152x152-precomposed.png']) {
    t.equal(isBrowserIconPath(path), true, path);
  }
  for (const path of ['/favicon.ico/x', '/app/favicon.ico', '/favicon.icon', '/apple-touch-icon.png.bak', '/fhir/Patient/favicon.ico', '/']) {
    t.equal(isBrowserIconPath(path), false, path);
  }
});
