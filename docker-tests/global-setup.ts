// vitest globalSetup of the docker project: after the last test file, stop the dockerd that the
// harness started (if it started one), so a test run leaves the machine as it found it.
import { stopDockerdIfStarted } from './harness.js';

export default function setup(): () => Promise<void> {
  return async () => {
    await stopDockerdIfStarted();
  };
}
