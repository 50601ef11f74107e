// One place that knows how we start a browser: Debian's Chromium (or FEUILLETON_CHROMIUM),
// headless, with everything that would reach the network switched off. playwright-core never
// downloads a browser of its own.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { UserError } from '../errors.ts';

export const chromiumPath = (): string => process.env.FEUILLETON_CHROMIUM || '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath))
    throw new UserError(
      `no Chromium at ${executablePath}; install it (apt-get install chromium) or set FEUILLETON_CHROMIUM to its path`,
    );
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
