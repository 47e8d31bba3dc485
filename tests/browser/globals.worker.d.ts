// What the staff app's workers find in their global scope beyond
// TypeScript's worker library: jsQR (importScripts) and the browser's
// BarcodeDetector where it has one.
declare var jsQR: ((data: Uint8ClampedArray, width: number, height: number, options?: object) => { data: string } | null) | undefined;
declare var BarcodeDetector: any;
