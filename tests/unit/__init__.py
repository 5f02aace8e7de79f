"""Fast unit tests of the tap's pure logic: no emulator, no network, a few seconds in all."""
