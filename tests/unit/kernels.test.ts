// Kernel tests: the reference backward kernels against finite differences, then every
// native kernel against the reference on odd shapes (AVX2 path here, the portable path
// in a child process with LORAKIT_NO_AVX2=1).
import { registerGradChecks } from './kernels-gradcheck.js';

registerGradChecks();
