// SPDX-License-Identifier: GPL-2.0-or-later
/** The release, kept equal to package.json's version by a test. */
export const VERSION = "0.2.0";
